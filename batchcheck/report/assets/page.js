// batchcheck report pages: filter the tensor table by status or name, sort any table by a column.
(function () {
  "use strict";
  function filterTensors(box) {
    var active = box.querySelector(".filters button.active");
    var status = active ? active.getAttribute("data-status") : "all";
    var text = (box.querySelector(".filters input") || { value: "" }).value.toLowerCase();
    var rows = box.querySelectorAll("tbody tr");
    for (var i = 0; i < rows.length; i++) {
      var row = rows[i];
      var show = (status === "all" || row.getAttribute("data-status") === status) &&
        (!text || row.getAttribute("data-name").indexOf(text) !== -1);
      row.hidden = !show;
    }
  }
  function sortBy(th) {
    var table = th.closest("table"), body = table.tBodies[0];
    var column = Array.prototype.indexOf.call(th.parentNode.children, th);
    var numeric = th.getAttribute("data-sort") === "num";
    var descending = !th.classList.contains("sorted-desc");
    var rows = Array.prototype.slice.call(body.rows);
    function key(row) {
      var cell = row.cells[column];
      if (!numeric) { return cell.textContent; }
      var value = parseFloat(cell.getAttribute("data-value"));
      return isNaN(value) ? -1 : value;
    }
    rows.sort(function (a, b) {
      var x = key(a), y = key(b);
      var order = x < y ? -1 : x > y ? 1 : 0;
      return descending ? -order : order;
    });
    rows.forEach(function (row) { body.appendChild(row); });
    Array.prototype.forEach.call(th.parentNode.children, function (other) {
      other.classList.remove("sorted-asc", "sorted-desc");
    });
    th.classList.add(descending ? "sorted-desc" : "sorted-asc");
  }
  document.querySelectorAll("[data-filter-box]").forEach(function (box) {
    box.querySelectorAll(".filters button").forEach(function (button) {
      button.addEventListener("click", function () {
        box.querySelectorAll(".filters button").forEach(function (b) { b.classList.remove("active"); });
        button.classList.add("active");
        filterTensors(box);
      });
    });
    var input = box.querySelector(".filters input");
    if (input) { input.addEventListener("input", function () { filterTensors(box); }); }
  });
  document.querySelectorAll("th[data-sort]").forEach(function (th) {
    th.addEventListener("click", function () { sortBy(th); });
  });
}());
