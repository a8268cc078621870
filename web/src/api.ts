// The console's connection to the server: the same gRPC services on the same origin, over
// gRPC-Web, authenticated exactly as any other caller (x-circonus-auth-token and
// x-circonus-app-name). The token lives in sessionStorage only: never a cookie, never
// localStorage, gone when the tab closes.
import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { AccountService } from "./gen/apitokens/v1/account_service_pb";
import { TokenService } from "./gen/apitokens/v1/token_service_pb";
import { BadRequestSchema, ErrorInfoSchema } from "./gen/google/rpc/error_details_pb";

/** The application name the console presents: on a Pending token it waits for approval like any other. */
export const CONSOLE_APP_NAME = "api-tokens-console";

const TOKEN_KEY = "api-tokens-console.token";

export const session = {
  token(): string | null {
    return sessionStorage.getItem(TOKEN_KEY);
  },
  signIn(token: string): void {
    sessionStorage.setItem(TOKEN_KEY, token);
  },
  signOut(): void {
    sessionStorage.removeItem(TOKEN_KEY);
  },
};

const credentials: Interceptor = (next) => async (req) => {
  const token = session.token();
  if (token) req.header.set("x-circonus-auth-token", token);
  req.header.set("x-circonus-app-name", CONSOLE_APP_NAME);
  return next(req);
};

const transport = createGrpcWebTransport({
  baseUrl: location.origin,
  interceptors: [credentials],
});

export const tokens: Client<typeof TokenService> = createClient(TokenService, transport);
export const accounts: Client<typeof AccountService> = createClient(AccountService, transport);

/** What the console needs to know about a failed call. */
export interface Failure {
  code: Code;
  /** The ErrorInfo reason, e.g. APP_PENDING, ADMIN_REQUIRED; empty if none was sent. */
  reason: string;
  message: string;
  /** Field violations of an INVALID_ARGUMENT. */
  fields: { field: string; description: string }[];
}

export function failure(err: unknown): Failure {
  const e = ConnectError.from(err);
  const info = e.findDetails(ErrorInfoSchema)[0];
  const bad = e.findDetails(BadRequestSchema)[0];
  return {
    code: e.code,
    reason: info?.reason ?? "",
    message: e.rawMessage,
    fields: bad?.fieldViolations.map((v) => ({ field: v.field, description: v.description })) ?? [],
  };
}

/** One line for people: the server's message, with every bad field. */
export function describe(f: Failure): string {
  if (f.fields.length > 0) return f.fields.map((v) => `${v.field}: ${v.description}`).join("; ");
  if (f.code === Code.Unavailable && f.reason === "") return `The server cannot be reached (${f.message}).`;
  return f.message;
}

export { Code };
