// Clerk's sign-in on /signin (only when the operator configured Clerk). ClerkJS loads from
// the instance's Frontend API (deferred, so it has run by now); once someone is signed in
// with Clerk, their session token is traded for a dashboard session at /signin/clerk.
(function () {
  "use strict";
  var mount = document.getElementById("clerk-sign-in");
  if (!mount) return;
  var problem = document.getElementById("clerk-error");
  var exchanging = false;

  function fail(message) {
    problem.textContent = message;
    problem.hidden = false;
  }

  function exchange(clerk) {
    if (exchanging) return Promise.resolve();
    exchanging = true;
    return clerk.session.getToken().then(function (token) {
      return fetch("/signin/clerk", {
        method: "POST",
        credentials: "same-origin",
        headers: { Authorization: "Bearer " + token },
      });
    }).then(function (response) {
      return response.json().then(function (body) {
        if (response.ok) {
          window.location.assign(body.redirect || "/campaigns");
        } else {
          exchanging = false;
          fail((body.error && body.error.message) || "Clerk sign-in was refused.");
        }
      });
    });
  }

  var clerk = window.Clerk;
  if (!clerk) {
    fail("Clerk's sign-in could not load from " + mount.dataset.origin + ".");
    return;
  }
  var signedOut = new URLSearchParams(window.location.search).has("signed_out");
  clerk.load().then(function () {
    if (clerk.user && signedOut) return clerk.signOut();
    if (clerk.user) return exchange(clerk);
  }).then(function () {
    if (exchanging) return;
    clerk.addListener(function (state) {
      if (state.user && state.session) exchange(clerk);
    });
    clerk.mountSignIn(mount, {
      forceRedirectUrl: "/signin",
      signUpForceRedirectUrl: "/signin",
    });
  }).catch(function (error) {
    fail("Clerk sign-in failed: " + (error && error.message ? error.message : error));
  });
})();
