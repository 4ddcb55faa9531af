// Skriptoteket's tool page never typesets LaTeX (tool output is sanitized HTML drawn by the tool app), but Voila's
// front end typesets an empty element at start, which made every page load evaluate MathJax 3 (~950 kB of
// JavaScript, 16 chunks). The template points JupyterLab's MathJax 2 typesetter here instead: a MathJax
// that does nothing, so no chunk is loaded and nothing is typeset. See docs/teacher-path.md, "Measured".
window.MathJax = {
  Hub: {
    Config: function () {},
    Configured: function () {},
    Queue: function () {},
    Register: { StartupHook: function () {} },
  },
};
