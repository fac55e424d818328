// Colours the stock shadcn Badge and Progress take through className, for states the stock
// variants do not have (online, delivered, running, …).

/** Badge classes by tone. */
export const badgeTone = {
  success: "border-transparent bg-success/15 text-green-800 dark:text-green-300",
  warning: "border-transparent bg-warning/20 text-amber-800 dark:text-amber-300",
} as const;

/** Progress classes by tone: they colour the indicator. */
export const progressTone = {
  default: "",
  success: "[&>[data-slot=progress-indicator]]:bg-green-600",
  warning: "[&>[data-slot=progress-indicator]]:bg-warning",
  danger: "[&>[data-slot=progress-indicator]]:bg-destructive",
  muted: "bg-muted [&>[data-slot=progress-indicator]]:bg-primary/40",
} as const;
