"""Real-browser tests: JupyterLab driven by Playwright in headless Chromium."""
