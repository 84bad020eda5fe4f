// On a narrow screen the filters start folded behind their summary (a button the coordinator taps);
// without this script they stay open, as on a wide screen.
(function () {
  "use strict";
  if (!window.matchMedia("(max-width: 700px)").matches) { return; }
  document.querySelectorAll("details.fold").forEach(function (fold) {
    if (!fold.querySelector(".has-error")) { fold.open = false; }
  });
})();
