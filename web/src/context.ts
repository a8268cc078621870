// Who is signed in and what they may do, as GetAccount answers it, and what every page shares.
import type { Account, Member, Token } from "./gen/apitokens/v1/resources_pb";
import { Privilege } from "./gen/apitokens/v1/resources_pb";
import { accounts } from "./api";
import type { LiveApplications } from "./live";

export interface Ctx {
  account: Account;
  /** The calling member; undefined when signed in with an account token. */
  caller: Member | undefined;
  callerTokenId: string;
  /** The privilege the caller acts with: the console offers nothing above it. */
  privilege: Privilege;
  live: LiveApplications;
  /** The account's members by user id, for owner and actor names. */
  members: Map<string, Member>;
  /** Tokens seen so far by id, for naming the token of a pending application. */
  tokenCache: Map<string, Token>;
}

export const isAdmin = (ctx: Ctx) => ctx.privilege === Privilege.ADMIN;
/** Read-Only callers may change nothing; Normal and Admin manage tokens. */
export const canWrite = (ctx: Ctx) => ctx.privilege >= Privilege.NORMAL;

/** Reads every page of members (an account has few: at most 1000 a page). */
export async function loadMembers(ctx: Ctx): Promise<void> {
  const members = new Map<string, Member>();
  let pageToken = "";
  for (let page = 0; page < 20; page++) {
    const res = await accounts.listMembers({ pageSize: 1000, pageToken });
    for (const m of res.members) members.set(m.userId, m);
    pageToken = res.nextPageToken;
    if (!pageToken) break;
  }
  ctx.members = members;
}

export function memberName(ctx: Ctx, userId: string): string {
  if (!userId) return "";
  return ctx.members.get(userId)?.userName ?? `former member ${userId.slice(0, 8)}`;
}
