import { RedirectHome } from "@/features/auth/redirect-home";

export default function Home() {
  return <RedirectHome />;
}
