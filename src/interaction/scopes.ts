/** What each scope lets the application do, as shown on the consent page. */
export const scopeDescriptions: Record<string, string> = {
  openid: "know who you are (your account identifier)",
  profile: "see your name",
  email: "see your email address",
  roles: "see your role",
  offline_access: "stay signed in and access your data while you are away",
};
