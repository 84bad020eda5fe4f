// Back to a form already sent is the same action, not a second one. Pages are not cached, so Back
// fetches the form again with a new request id; the id this form was sent with is kept in its history
// entry's state and put back when the entry is returned to (Back, Forward), so resubmitting replays
// the first result. A new visit (a link, the address bar) keeps the new id: a new action.
(function () {
  "use strict";
  var form = document.querySelector("form.workflow");
  var input = form && form.querySelector("input[name=request_id]");
  if (!input || !window.history || !history.replaceState) { return; }
  var entry = (performance.getEntriesByType && performance.getEntriesByType("navigation")[0]) || {};
  var state = history.state || {};
  function sentBefore(id) {
    input.value = id;
    var note = document.getElementById("sent-before");
    if (note) { note.hidden = false; }
  }
  if (entry.type === "back_forward" && state.fhircareSent) { sentBefore(state.fhircareSent); }
  // a page kept whole in the back/forward cache holds its id already; it says it was sent
  window.addEventListener("pageshow", function (event) {
    var kept = history.state || {};
    if (event.persisted && kept.fhircareSent) { sentBefore(kept.fhircareSent); }
  });
  form.addEventListener("submit", function () {
    var kept = {};
    Object.keys(history.state || {}).forEach(function (k) { kept[k] = history.state[k]; });
    kept.fhircareSent = input.value;
    history.replaceState(kept, "");
  });
})();
