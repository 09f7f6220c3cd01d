// jobline dashboard: refreshes the part of the page marked data-live every 2 s without a
// reload, by fetching the same URL and swapping that part. No library, nothing external.
(function () {
  "use strict";
  var live = document.querySelector("[data-live]");
  if (!live) return;
  var busy = false;
  function refresh() {
    if (busy || document.hidden) return;
    busy = true;
    fetch(window.location.href, { credentials: "same-origin", cache: "no-store", redirect: "manual" })
      .then(function (res) {
        if (res.type === "opaqueredirect" || res.status === 303) {
          window.location.href = "/dashboard/login";
          return null;
        }
        return res.ok ? res.text() : null;
      })
      .then(function (text) {
        if (!text) return;
        var doc = new DOMParser().parseFromString(text, "text/html");
        var fresh = doc.querySelector("[data-live]");
        var focused = document.activeElement;
        if (fresh && !(focused && live.contains(focused) && focused.tagName === "INPUT")) {
          live.replaceChildren.apply(live, Array.prototype.slice.call(fresh.childNodes));
        }
      })
      .catch(function () {})
      .then(function () { busy = false; });
  }
  window.setInterval(refresh, 2000);
})();
