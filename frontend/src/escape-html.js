// Stands in for sanitize-html (~230 kB with its HTML parser and postcss), which the widget manager uses only for
// widget descriptions with description_allow_html=True. The tool app never sets that, so such text is shown as
// text: escaping everything is the strictest sanitizer.
export default function escapeHtml(source) {
  return String(source).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
