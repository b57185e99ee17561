/**
 * AppError: the one error type our services throw for expected failures.
 * `code` is stable (OAuth-style snake_case), `status` is the HTTP status, and
 * `message` is safe to show to the caller; anything else is a 5xx whose
 * details stay in the log.
 */
export type AppErrorCode =
  | "invalid_request"
  | "invalid_client_metadata"
  | "invalid_redirect_uri"
  | "invalid_password"
  | "conflict"
  | "not_found"
  | "unauthorized"
  | "forbidden"
  | "too_many_requests"
  | "server_error";

const statusOf: Record<AppErrorCode, number> = {
  invalid_request: 400,
  invalid_client_metadata: 400,
  invalid_redirect_uri: 400,
  invalid_password: 400,
  conflict: 409,
  not_found: 404,
  unauthorized: 401,
  forbidden: 403,
  too_many_requests: 429,
  server_error: 500,
};

export class AppError extends Error {
  readonly status: number;
  constructor(
    readonly code: AppErrorCode,
    message: string,
  ) {
    super(message);
    this.name = "AppError";
    this.status = statusOf[code];
  }
}
