// Words and times as the console shows them: the Circonus API Tokens page's spelling of privileges, token
// types and application states.
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { AppState, Privilege, TokenState, TokenType } from "./gen/apitokens/v1/resources_pb";
import { h } from "./dom";

export const PRIVILEGES: [Privilege, string][] = [
  [Privilege.READ_ONLY, "Read-Only"],
  [Privilege.NORMAL, "Normal"],
  [Privilege.ADMIN, "Admin"],
];

export const APP_STATES: [AppState, string][] = [
  [AppState.ALLOW, "Allow"],
  [AppState.PENDING, "Pending"],
  [AppState.DENY, "Deny"],
];

export function privilegeName(p: Privilege): string {
  return PRIVILEGES.find(([v]) => v === p)?.[1] ?? "None";
}

export function appStateName(s: AppState): string {
  return APP_STATES.find(([v]) => v === s)?.[1] ?? "Unknown";
}

export function tokenTypeName(t: TokenType): string {
  return t === TokenType.ACCOUNT ? "Account" : t === TokenType.USER ? "User" : "Unknown";
}

export function tokenStateName(s: TokenState): string {
  switch (s) {
    case TokenState.ACTIVE:
      return "Active";
    case TokenState.RETIRED:
      return "Retired";
    case TokenState.EXPIRED:
      return "Expired";
    default:
      return "Unknown";
  }
}

const pad = (n: number) => String(n).padStart(2, "0");

/** A `<time>` in the browser's zone, to the minute; the exact instant in its title. */
export function when(ts: Timestamp | undefined, never = "Never"): HTMLElement {
  if (!ts) return h("span", { class: "muted" }, never);
  const d = timestampDate(ts);
  const text = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
  return h("time", { datetime: d.toISOString(), title: d.toString() }, text);
}
