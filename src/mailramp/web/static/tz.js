// Remember the browser's time zone so pages show times in it (no inline script: CSP).
(function () {
  try {
    var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (zone && document.cookie.indexOf("mailramp_tz=" + zone) === -1) {
      document.cookie = "mailramp_tz=" + encodeURIComponent(zone) + "; path=/; max-age=31536000; samesite=lax";
    }
  } catch (e) { /* keep UTC */ }
})();
