// Late invoices: "select all on this page" (an enhancement: hidden without JavaScript).
(function () {
  function wire(root) {
    var all = root.querySelector("#pick-all");
    if (!all || all.dataset.wired) return;
    all.dataset.wired = "1";
    all.hidden = false;
    var boxes = function () { return root.querySelectorAll('input[name="plan"]'); };
    all.addEventListener("change", function () {
      boxes().forEach(function (box) { box.checked = all.checked; });
    });
  }
  document.addEventListener("DOMContentLoaded", function () { wire(document); });
  document.addEventListener("htmx:afterSettle", function () { wire(document); });
})();
