// Swagger UI for this server's /openapi.json, from files this server serves: no CDN, no
// inline script (the page's Content-Security-Policy allows neither).
window.addEventListener("load", () => {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
});
