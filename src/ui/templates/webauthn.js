// The browser's side of a security-key ceremony, for the page that includes it. The server
// put the ceremony's options in the form's data-options; when the button is pressed this asks
// the browser for the key, and posts the key's answer back in the form's credential field.
// Binary fields travel as base64url text both ways, as the server reads and writes them.
(function () {
  "use strict";

  function toBytes(text) {
    var base64 = text.replace(/-/g, "+").replace(/_/g, "/");
    while (base64.length % 4) {
      base64 += "=";
    }
    var binary = atob(base64);
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i++) {
      bytes[i] = binary.charCodeAt(i);
    }
    return bytes;
  }

  function toText(buffer) {
    var bytes = new Uint8Array(buffer);
    var binary = "";
    for (var i = 0; i < bytes.length; i++) {
      binary += String.fromCharCode(bytes[i]);
    }
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function decodeIds(credentials) {
    return (credentials || []).map(function (credential) {
      return Object.assign({}, credential, { id: toBytes(credential.id) });
    });
  }

  function creationOptions(options) {
    var user = Object.assign({}, options.user, { id: toBytes(options.user.id) });
    return Object.assign({}, options, {
      challenge: toBytes(options.challenge),
      user: user,
      excludeCredentials: decodeIds(options.excludeCredentials)
    });
  }

  function requestOptions(options) {
    return Object.assign({}, options, {
      challenge: toBytes(options.challenge),
      allowCredentials: decodeIds(options.allowCredentials)
    });
  }

  function registration(credential) {
    return {
      id: credential.id,
      rawId: toText(credential.rawId),
      type: credential.type,
      response: {
        attestationObject: toText(credential.response.attestationObject),
        clientDataJSON: toText(credential.response.clientDataJSON)
      },
      extensions: {}
    };
  }

  function assertion(credential) {
    var response = credential.response;
    return {
      id: credential.id,
      rawId: toText(credential.rawId),
      type: credential.type,
      response: {
        authenticatorData: toText(response.authenticatorData),
        clientDataJSON: toText(response.clientDataJSON),
        signature: toText(response.signature),
        userHandle: response.userHandle ? toText(response.userHandle) : null
      },
      extensions: {}
    };
  }

  function ask(form) {
    var options = JSON.parse(form.getAttribute("data-options")).publicKey;
    if (form.getAttribute("data-ceremony") === "register") {
      return navigator.credentials
        .create({ publicKey: creationOptions(options) })
        .then(registration);
    }
    return navigator.credentials
      .get({ publicKey: requestOptions(options) })
      .then(assertion);
  }

  function start() {
    var form = document.getElementById("security-key-form");
    var button = document.getElementById("security-key-start");
    var status = document.getElementById("security-key-status");
    if (!form || !button || !window.PublicKeyCredential) {
      return;
    }
    button.disabled = false;
    button.addEventListener("click", function () {
      button.disabled = true;
      status.hidden = true;
      ask(form).then(
        function (answer) {
          form.elements.credential.value = JSON.stringify(answer);
          form.submit();
        },
        function (error) {
          // The browser's reason (NotAllowedError, InvalidStateError, ...): no secret in it.
          status.setAttribute("data-error", error && error.name ? error.name : "Error");
          status.hidden = false;
          button.disabled = false;
        }
      );
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
