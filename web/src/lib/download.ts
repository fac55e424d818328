/** downloadText saves text as a file named filename, from memory (nothing is sent anywhere). */
export function downloadText(filename: string, text: string, type = "application/x-openvpn-profile") {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
