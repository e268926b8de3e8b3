// Stand-in for the part of ClerkJS's browser API that mailramp's /static/clerk.js uses.
// Served by tests/support/clerk_frontend.py at ClerkJS's path on the Frontend API.
(function () {
  "use strict";
  var script = document.currentScript;
  var api = new URL(script.src).origin;
  var key = script.getAttribute("data-clerk-publishable-key");
  var STORE = "standin_clerk_client";
  var listeners = [];

  function post(path, body) {
    return fetch(api + path, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body || {}),
    }).then(function (response) {
      if (!response.ok) throw new Error("Frontend API answered " + response.status);
      return response.json();
    });
  }

  function adopt(client) {
    clerk.user = client ? { id: client.user_id, primaryEmailAddress: { emailAddress: client.email } } : null;
    clerk.session = client ? {
      id: client.session_id,
      getToken: function () {
        return post("/v1/client/sessions/" + client.session_id + "/tokens",
          { email: client.email, name: client.name }).then(function (b) { return b.jwt; });
      },
    } : null;
  }

  function notify() {
    listeners.forEach(function (listener) { listener({ user: clerk.user, session: clerk.session }); });
  }

  var clerk = {
    user: null,
    session: null,
    loaded: false,
    load: function () {
      if (!key || key.indexOf("pk_") !== 0) return Promise.reject(new Error("missing publishable key"));
      adopt(JSON.parse(window.localStorage.getItem(STORE) || "null"));
      clerk.loaded = true;
      return Promise.resolve();
    },
    addListener: function (listener) {
      listeners.push(listener);
      return function () { listeners.splice(listeners.indexOf(listener), 1); };
    },
    signOut: function () {
      window.localStorage.removeItem(STORE);
      adopt(null);
      notify();
      return Promise.resolve();
    },
    mountSignIn: function (element) {
      // Like ClerkJS's CSS-in-JS: a <style> element made at run time.
      var style = document.createElement("style");
      style.textContent = ".cl-standin { border: 2px solid #6c47ff; border-radius: 8px; padding: 12px; }";
      document.head.appendChild(style);
      element.innerHTML = "";
      var form = document.createElement("form");
      form.className = "cl-standin";
      var label = document.createElement("label");
      label.textContent = "Email address (Clerk)";
      var input = document.createElement("input");
      input.type = "email";
      input.name = "identifier";
      label.appendChild(input);
      var button = document.createElement("button");
      button.type = "submit";
      button.textContent = "Continue with Clerk";
      form.appendChild(label);
      form.appendChild(button);
      form.addEventListener("submit", function (event) {
        event.preventDefault();
        post("/v1/client/sign_ins", { identifier: input.value }).then(function (client) {
          window.localStorage.setItem(STORE, JSON.stringify(client));
          adopt(client);
          notify();
        });
      });
      element.appendChild(form);
    },
  };
  window.Clerk = clerk;
})();
