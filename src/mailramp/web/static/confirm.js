// Asks before a form that undoes something is sent: every form with a data-confirm
// attribute shows its text and is sent only when the person agrees. (A file, not inline
// code: the pages' Content-Security-Policy allows scripts from this server only.)
document.addEventListener("submit", function (event) {
  var question = event.target.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});
