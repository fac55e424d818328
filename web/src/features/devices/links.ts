/** deviceHref is a device's page. */
export function deviceHref(id: string) {
  return `/devices/detail/?id=${encodeURIComponent(id)}`;
}
