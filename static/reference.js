// The standard reference: Swagger UI (vendored, static/vendor/) rendering /openapi.json.
// A separate file because the page's Content-Security-Policy runs no inline script.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    // No badge from the public validator: the page loads nothing from elsewhere.
    validatorUrl: null,
    // Requests go to this page's own origin, as the contract's relative server says.
    tryItOutEnabled: false,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    onComplete: () => { document.body.dataset.reference = "loaded"; },
  });
});
