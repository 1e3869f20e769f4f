// Refresh a page's progress block without reloading the page: fetch its fragment every 2 s
// while the job runs (the element's data-poll names the fragment route). Nothing else is sent.
(function () {
  var box = document.querySelector("[data-poll]");
  if (!box) { return; }
  function running() {
    var t = box.querySelector("[data-status]");
    return !t || t.getAttribute("data-status") === "running" || t.getAttribute("data-status") === "pending";
  }
  function tick() {
    if (!running()) { return; }
    fetch(box.getAttribute("data-poll"), { headers: { "Accept": "text/html" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) { if (html !== null) { box.innerHTML = html; } })
      .catch(function () {})
      .then(function () { setTimeout(tick, 2000); });
  }
  setTimeout(tick, 2000);
})();
