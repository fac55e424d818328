package dashboard

// notBuiltPage is what every path shows when the binary was built without the dashboard.
const notBuiltPage = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>cellgate: dashboard not built</title>
<style>
body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;color:#222}
code{background:#f2f2f2;padding:.1rem .3rem;border-radius:.25rem}
</style>
</head>
<body>
<h1>Dashboard not built: run <code>make web</code></h1>
<p>This cellgate binary was built without the operator dashboard. Build it with
<code>make web</code> (npm ci and next build in web/, copied into dashboard/dist/), then
rebuild cellgate with <code>make build</code>; <code>make dev</code> does both.</p>
<p>The API works without it: <code>/api/v1</code>, <code>/healthz</code>, <code>/readyz</code>.</p>
</body>
</html>
`
