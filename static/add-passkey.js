// The "Add a passkey" button of /account and of an invitation: a WebAuthn
// registration ceremony with @simplewebauthn/browser, verified and stored by
// the server. The button names its endpoints (data-base: POST base/options,
// then POST base) and its CSRF token; the server says where to go next
// (redirectTo), /account by default.
(function () {
  "use strict";
  var button = document.getElementById("add-passkey");
  var errorBox = document.getElementById("passkey-error");
  if (!button || !window.SimpleWebAuthnBrowser) return;
  var webauthn = window.SimpleWebAuthnBrowser;

  function post(url, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "content-type": "application/json", "x-csrf-token": button.dataset.csrf },
      body: JSON.stringify(body || {}),
    }).then(function (res) {
      return res.json().then(function (json) {
        // (/account) The last sign-in is too old for this change: sign in again, then come back.
        if (res.status === 401 && json.location) {
          window.location.assign(json.location);
          return new Promise(function () {});
        }
        if (!res.ok) throw new Error(json.error_description || "The passkey could not be added.");
        return json;
      });
    });
  }

  button.addEventListener("click", function () {
    errorBox.hidden = true;
    button.disabled = true;
    var base = button.dataset.base;
    post(base + "/options")
      .then(function (start) {
        return webauthn.startRegistration({ optionsJSON: start.options }).then(function (response) {
          return post(base, { challengeId: start.challengeId, response: response });
        });
      })
      .then(
        function (done) {
          window.location.assign((done && done.redirectTo) || "/account");
        },
        function (error) {
          errorBox.textContent = error && error.name === "NotAllowedError" ? "The passkey was not created." : error.message;
          errorBox.hidden = false;
          button.disabled = false;
        },
      );
  });
})();
