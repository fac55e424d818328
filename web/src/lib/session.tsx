"use client";

import { createContext, useCallback, useContext, useEffect, useState } from "react";
import { useRouter } from "next/navigation";

import { api, ApiError, errorMessage, onUnauthorized, setCSRFToken, type Operator } from "@/lib/api";

interface Session {
  operator: Operator;
  logout: () => Promise<void>;
}

const SessionContext = createContext<Session | null>(null);

/** useSession returns the logged-in operator; only under SessionProvider. */
export function useSession(): Session {
  const s = useContext(SessionContext);
  if (!s) throw new Error("useSession outside SessionProvider");
  return s;
}

/** loginPath is the login page that returns to the current page; expired adds its message. */
export function loginPath(expired: boolean): string {
  const here = window.location.pathname + window.location.search;
  const q = new URLSearchParams();
  if (here !== "/" && !here.startsWith("/login")) q.set("next", here);
  if (expired) q.set("expired", "1");
  const s = q.toString();
  return `/login/${s ? `?${s}` : ""}`;
}

/**
 * SessionProvider renders its children once GET /me says who is logged in; without a session it
 * sends the browser to the login page. A 401 later (the session expired or was revoked) sends it
 * there with a message.
 */
export function SessionProvider({
  children,
  fallback,
}: {
  children: React.ReactNode;
  fallback: (error: string | null, retry: () => void) => React.ReactNode;
}) {
  const router = useRouter();
  const [operator, setOperator] = useState<Operator | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [attempt, setAttempt] = useState(0);

  useEffect(() => {
    let live = true;
    api
      .me({ quiet401: true })
      .then((r) => {
        if (!live) return;
        setCSRFToken(r.csrf_token ?? "");
        setOperator(r.operator);
      })
      .catch((e: unknown) => {
        if (!live) return;
        if (e instanceof ApiError && e.status === 401) router.replace(loginPath(false));
        else setError(errorMessage(e));
      });
    return () => {
      live = false;
    };
  }, [router, attempt]);

  useEffect(() => {
    onUnauthorized(() => {
      setCSRFToken("");
      router.replace(loginPath(true));
    });
    return () => onUnauthorized(null);
  }, [router]);

  const logout = useCallback(async () => {
    try {
      await api.logout();
    } finally {
      setCSRFToken("");
      router.replace("/login/?logged_out=1");
    }
  }, [router]);

  if (!operator) {
    return fallback(error, () => {
      setError(null);
      setAttempt((a) => a + 1);
    });
  }
  return <SessionContext.Provider value={{ operator, logout }}>{children}</SessionContext.Provider>;
}
