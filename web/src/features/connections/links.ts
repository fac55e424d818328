/** connectionHref is a connection's page. */
export function connectionHref(id: string) {
  return `/connections/detail/?id=${encodeURIComponent(id)}`;
}
