import type { NextConfig } from "next";
import { PHASE_DEVELOPMENT_SERVER } from "next/constants";

// The dashboard is a static export served by `cellgate api` on the same origin as the API, so
// the session cookie just works and there is no CORS. `npm run dev` instead runs Next's dev
// server and proxies /api to a running api (CELLGATE_API_URL, default http://127.0.0.1:8080):
// rewrites exist only in the dev phase, since a static export cannot have them.
export default function config(phase: string): NextConfig {
  const base: NextConfig = {
    // Pages are directories (/devices/ → devices/index.html): the Go server (package
    // dashboard) serves them without any rewrite table.
    trailingSlash: true,
    reactStrictMode: true,
    poweredByHeader: false,
    images: { unoptimized: true },
  };
  if (phase === PHASE_DEVELOPMENT_SERVER) {
    const api = process.env.CELLGATE_API_URL ?? "http://127.0.0.1:8080";
    return {
      ...base,
      // The API's paths have no trailing slash; keep Next from redirecting them.
      skipTrailingSlashRedirect: true,
      async rewrites() {
        return [{ source: "/api/:path*", destination: `${api}/api/:path*` }];
      },
    };
  }
  return { ...base, output: "export" };
}
