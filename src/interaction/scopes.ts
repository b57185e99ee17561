/** The consent page's texts per scope live with the scope vocabulary (src/scopes.ts). */
export { scopeDescriptions } from "../scopes.ts";
