import type { LucideIcon } from "lucide-react";

/** EmptyState says that a list has nothing yet, and what to do about it. */
export function EmptyState({
  icon: Icon,
  title,
  children,
  action,
  testId,
}: {
  icon: LucideIcon;
  title: string;
  children?: React.ReactNode;
  action?: React.ReactNode;
  testId?: string;
}) {
  return (
    <div
      className="flex flex-col items-center justify-center gap-3 rounded-xl border border-dashed px-6 py-12 text-center"
      data-testid={testId}
    >
      <div className="bg-muted grid size-12 place-items-center rounded-full">
        <Icon className="text-muted-foreground size-6" aria-hidden />
      </div>
      <h2 className="text-base font-semibold">{title}</h2>
      {children && <div className="text-muted-foreground max-w-md text-sm">{children}</div>}
      {action}
    </div>
  );
}
