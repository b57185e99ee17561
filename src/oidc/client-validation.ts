/**
 * oidc-provider's own validation of client metadata, on top of our rules, so
 * that a client we store is one the provider accepts (CLI and admin API alike).
 */
import type Provider from "oidc-provider";
import { AppError } from "../errors.ts";
import { providerMetadataOf } from "./client-store.ts";
import type { MetadataValidator } from "../services/clients.ts";

export function providerClientValidator(provider: () => Provider): MetadataValidator {
  return async (metadata) => {
    try {
      await provider().Client.validate(providerMetadataOf(metadata) as never);
    } catch (error) {
      throw new AppError("invalid_client_metadata", (error as { error_description?: string }).error_description ?? (error as Error).message);
    }
  };
}
