"use client";

import { useCallback, useEffect, useRef, useState } from "react";

/** The state of a resource loaded (and optionally polled) from the API. */
export interface Resource<T> {
  /** The last value loaded; kept while a refresh runs or after a refresh fails. */
  data: T | undefined;
  /** The error of the last load, cleared by the next success. */
  error: unknown;
  /** True until the first load settles. */
  loading: boolean;
  /** Loads again now. */
  reload: () => Promise<void>;
  /** Replaces the value without a request (after a write that returned it). */
  mutate: (v: T | ((prev: T | undefined) => T)) => void;
}

/**
 * useResource loads fetcher() when key changes (null: load nothing) and, with refreshMs, again
 * every refreshMs while the page is visible. Answers of an older key are dropped.
 */
export function useResource<T>(key: string | null, fetcher: () => Promise<T>, refreshMs?: number): Resource<T> {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<unknown>(undefined);
  const [loading, setLoading] = useState(key !== null);
  // The fetcher of the latest render, so reload and the timer call the newest closure.
  const fetcherRef = useRef(fetcher);
  useEffect(() => {
    fetcherRef.current = fetcher;
  });
  // The key the latest request was made for; answers for another key are stale.
  const keyRef = useRef(key);

  const load = useCallback(async () => {
    const k = keyRef.current;
    if (k === null) return;
    try {
      const v = await fetcherRef.current();
      if (keyRef.current !== k) return;
      setData(v);
      setError(undefined);
    } catch (e) {
      if (keyRef.current !== k) return;
      setError(e);
    } finally {
      if (keyRef.current === k) setLoading(false);
    }
  }, []);

  useEffect(() => {
    keyRef.current = key;
    setData(undefined);
    setError(undefined);
    setLoading(key !== null);
    if (key !== null) void load();
  }, [key, load]);

  useEffect(() => {
    if (key === null || !refreshMs) return;
    const timer = setInterval(() => {
      if (document.visibilityState === "visible") void load();
    }, refreshMs);
    return () => clearInterval(timer);
  }, [key, refreshMs, load]);

  const mutate = useCallback((v: T | ((prev: T | undefined) => T)) => {
    setData((prev) => (typeof v === "function" ? (v as (p: T | undefined) => T)(prev) : v));
  }, []);

  return { data, error, loading, reload: load, mutate };
}
