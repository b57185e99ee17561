// Passkey sign-in on the sign-in page: the "Sign in with a passkey" button
// (a discoverable credential, no email needed) and, where the browser supports
// it, passkey autofill on the Email input (conditional mediation).
(function () {
  "use strict";
  var button = document.getElementById("passkey-sign-in");
  var errorBox = document.getElementById("passkey-error");
  if (!button || !window.SimpleWebAuthnBrowser) return;
  var webauthn = window.SimpleWebAuthnBrowser;
  var uid = button.dataset.uid;
  var csrf = button.dataset.csrf;
  var base = "/interaction/" + encodeURIComponent(uid) + "/passkey";

  function post(url, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "content-type": "application/json", "x-csrf-token": csrf },
      body: JSON.stringify(body || {}),
    }).then(function (res) {
      return res.json().then(function (json) {
        if (!res.ok) throw new Error(json.error_description || "Passkey sign-in failed.");
        return json;
      });
    });
  }

  function showError(message) {
    errorBox.textContent = message;
    errorBox.hidden = false;
  }

  var pending = null;
  function signIn(useBrowserAutofill) {
    if (!useBrowserAutofill && pending) webauthn.WebAuthnAbortService.cancelCeremony();
    var attempt = post(base + "/options").then(function (start) {
      return webauthn
        .startAuthentication({ optionsJSON: start.options, useBrowserAutofill: useBrowserAutofill })
        .then(function (response) {
          return post(base, { challengeId: start.challengeId, response: response });
        });
    });
    pending = attempt;
    return attempt.then(
      function (done) {
        window.location.assign(done.redirectTo);
      },
      function (error) {
        if (error && error.name === "AbortError") return;
        // Autofill runs on its own at page load: its failures are not the user's doing.
        if (useBrowserAutofill) {
          if (window.console) console.info("passkey autofill unavailable:", error && error.message);
          return;
        }
        showError("This passkey could not be used to sign in.");
      },
    );
  }

  button.addEventListener("click", function () {
    errorBox.hidden = true;
    signIn(false);
  });

  if (webauthn.browserSupportsWebAuthnAutofill) {
    webauthn.browserSupportsWebAuthnAutofill().then(function (supported) {
      if (supported) signIn(true);
    });
  }
})();
