// Starts Swagger UI on the page's OpenAPI document (a file, not inline code: the page's
// Content-Security-Policy allows scripts from this server only). No validator badge: it
// would send the document to validator.swagger.io.
(function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.spec,
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
})();
