// Narrow a long picker by name: keep the options whose label holds the words typed, and add the
// matches the sidecar's /api/v1/lookup finds beyond the first page of choices.
(function () {
  "use strict";
  document.querySelectorAll("input.picker-filter").forEach(function (filter) {
    var select = document.getElementById(filter.dataset.picker);
    if (!select) { return; }
    var all = Array.prototype.slice.call(select.options);
    var kinds = (filter.dataset.kinds || "").split(",").filter(function (k) { return k; });
    var timer = null;
    function show(words) {
      var shown = all.filter(function (o) { return !o.value || o.text.toLowerCase().indexOf(words) >= 0; });
      select.replaceChildren.apply(select, shown);
    }
    filter.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(function () {
        var words = filter.value.trim().toLowerCase();
        show(words);
        if (words.length < 2) { return; }
        Promise.all(kinds.map(function (kind) {
          return fetch("/api/v1/lookup?type=" + encodeURIComponent(kind) + "&name=" + encodeURIComponent(words),
                       {credentials: "same-origin"})
            .then(function (r) { return r.ok ? r.json() : []; })
            .catch(function () { return []; });
        })).then(function (lists) {
          var known = {};
          all.forEach(function (o) { known[o.value] = true; });
          lists.forEach(function (list) {
            list.forEach(function (choice) {
              if (!known[choice.reference]) {
                known[choice.reference] = true;
                all.push(new Option(choice.label, choice.reference));
              }
            });
          });
          show(words);
        });
      }, 150);
    });
  });
  // a payer or vendor picker and its "another organization" control: one choice at a time
  document.querySelectorAll("select[data-paired]").forEach(function (select) {
    select.addEventListener("change", function () {
      var other = document.getElementById(select.dataset.paired);
      if (select.value && other) { other.value = ""; }
    });
  });
})();
