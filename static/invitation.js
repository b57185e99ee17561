// The invitation page's "Add a passkey" button: a WebAuthn registration
// ceremony for the invited user, then the sign-in that the server completes.
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
        if (!res.ok) throw new Error(json.error_description || "The passkey could not be added.");
        return json;
      });
    });
  }

  button.addEventListener("click", function () {
    errorBox.hidden = true;
    button.disabled = true;
    post(button.dataset.base + "/options")
      .then(function (start) {
        return webauthn.startRegistration({ optionsJSON: start.options }).then(function (response) {
          return post(button.dataset.base, { challengeId: start.challengeId, response: response });
        });
      })
      .then(
        function (done) {
          window.location.assign(done.redirectTo);
        },
        function (error) {
          errorBox.textContent = error && error.name === "NotAllowedError" ? "The passkey was not created." : error.message;
          errorBox.hidden = false;
          button.disabled = false;
        },
      );
  });
})();
