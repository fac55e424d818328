// Generated from api/openapi.yaml by `npm run gen:api` (scripts/api-schema.ts): do not edit.
// The dashboard's API types derive from these (src/lib/api.ts).

export interface paths {
    "/openapi.json": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * This document, as JSON
         * @description The OpenAPI 3.1 document of /api/v1. It needs no authentication.
         */
        get: operations["getOpenAPI"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/session": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Log in
         * @description Checks an operator's email and password and starts a session: the answer sets the
         *     `cellgate_session` cookie (HttpOnly, SameSite=Lax, Secure unless the API listens on
         *     loopback only) and carries the session's CSRF token. A browser may log in only from
         *     the API's own origin: an `Origin` other than the request's own, or a `Sec-Fetch-Site`
         *     other than `same-origin` or `none`, is 403 `cross_origin`. Attempts are rate-limited
         *     per email (5, then one per 20 s) and per client (20, then one per 3 s; IPv6 per /64):
         *     429 with Retry-After. At most GOMAXPROCS password checks run at once; a login that
         *     finds none free within 2 s is 503 `busy` with Retry-After.
         */
        post: operations["login"];
        /**
         * Log out
         * @description Revokes the session server-side and clears the cookie. A request authenticated by an
         *     API token is 400 `no_session`: revoke tokens with `DELETE /tokens/{id}`.
         */
        delete: operations["logout"];
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/me": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Who is logged in
         * @description The operator, and, for a session, its CSRF token (the dashboard reads it after a reload).
         */
        get: operations["getMe"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/tokens": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * List the operator's API tokens
         * @description Never the tokens themselves. Expired tokens are listed until they are purged (every 10 minutes).
         */
        get: operations["listTokens"];
        put?: never;
        /**
         * Create a personal API token
         * @description The token is in this answer only; the API keeps its SHA-256. Without
         *     `expires_in_days` the token lasts until it is revoked.
         */
        post: operations["createToken"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/tokens/{id}": {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The object's id. One that is not a UUID, or another operator's, is 404. */
                id: components["parameters"]["ID"];
            };
            cookie?: never;
        };
        get?: never;
        put?: never;
        post?: never;
        /** Revoke an API token */
        delete: operations["deleteToken"];
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/devices": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** List the operator's devices */
        get: operations["listDevices"];
        put?: never;
        /**
         * Create a device
         * @description The device and its single-use enrollment token, which is in this answer only.
         */
        post: operations["createDevice"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/devices/{id}": {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The object's id. One that is not a UUID, or another operator's, is 404. */
                id: components["parameters"]["ID"];
            };
            cookie?: never;
        };
        /**
         * One device
         * @description The device with the id and Web UI link of its DeviceMonitor workflow, and whether the
         *     relay holds its tunnel session.
         */
        get: operations["getDevice"];
        put?: never;
        post?: never;
        /**
         * Delete a device
         * @description Its tokens stop working and its DeviceMonitor ends; its tunnel address is free again.
         *     409 `conflict` while connections use it: delete them first.
         */
        delete: operations["deleteDevice"];
        options?: never;
        head?: never;
        /** Rename a device */
        patch: operations["updateDevice"];
        trace?: never;
    };
    "/devices/{id}/events": {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The object's id. One that is not a UUID, or another operator's, is 404. */
                id: components["parameters"]["ID"];
            };
            cookie?: never;
        };
        /**
         * A device's online and offline transitions
         * @description Newest first; page with `before`. `after` is 400.
         */
        get: operations["listDeviceEvents"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/devices/{id}/reset-usage": {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The object's id. One that is not a UUID, or another operator's, is 404. */
                id: components["parameters"]["ID"];
            };
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Reset the usage of every connection of a device
         * @description Runs one `ResetUsage` workflow per connection of the device, at once, and waits for
         *     them (at most 10 s, else 504 `timeout`; the resets go on).
         */
        post: operations["resetDeviceUsage"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/connections": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * List the operator's connections
         * @description Usage as Postgres has it (the quota workflow saves it at most every 10 s: usually
         *     within 20 s of the relay's figure), each connection's last reset and quota workflow link.
         */
        get: operations["listConnections"];
        put?: never;
        /**
         * Create a proxy connection on a device
         * @description The password (given, or generated: 24 characters) is in this answer only; the API keeps
         *     its bcrypt hash. Without `username` one is generated (`cg-` and 10 characters).
         *     Usernames are unique across all operators: a taken one is 409 `username_taken`,
         *     whoever has it; after 10 taken names (then one per 30 s) an operator's chosen usernames
         *     are 429 `rate_limited` with Retry-After. An unknown `device_id` is 404 naming it.
         */
        post: operations["createConnection"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/connections/{id}": {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The object's id. One that is not a UUID, or another operator's, is 404. */
                id: components["parameters"]["ID"];
            };
            cookie?: never;
        };
        /**
         * One connection
         * @description `bandwidth_used` is the figure its quota workflow knows now (Postgres's when the
         *     workflow does not answer within 2 s), with its last reset and quota workflow link.
         */
        get: operations["getConnection"];
        put?: never;
        post?: never;
        /**
         * Delete a connection
         * @description Its logins are refused and its OpenVPN sessions ended at once; its quota workflow ends.
         */
        delete: operations["deleteConnection"];
        options?: never;
        head?: never;
        /**
         * Rename, re-limit, enable or disable a connection
         * @description At least one field. A new limit goes to the connection's quota workflow: above the
         *     usage the cutoff is lifted, below it the connection is cut off; 503 `unavailable` when
         *     Temporal did not take it (the limit is saved: send it again). Disabling refuses its
         *     logins and ends its OpenVPN sessions.
         */
        patch: operations["updateConnection"];
        trace?: never;
    };
    "/connections/{id}/ovpn": {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The object's id. One that is not a UUID, or another operator's, is 404. */
                id: components["parameters"]["ID"];
            };
            cookie?: never;
        };
        /**
         * A connection's OpenVPN client profile
         * @description The profile prompts for username and password, which are shown only when the
         *     connection is created or its password regenerated. 404 for a connection of another
         *     protocol, 503 `openvpn_not_configured` when the server has no OpenVPN
         *     (`CELLGATE_OPENVPN_DIR`).
         */
        get: operations["getConnectionProfile"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/connections/{id}/regenerate-password": {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The object's id. One that is not a UUID, or another operator's, is 404. */
                id: components["parameters"]["ID"];
            };
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Give a connection a new generated password
         * @description The new password is in this answer only; the old one stops working and its sessions are ended.
         */
        post: operations["regeneratePassword"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/connections/{id}/reset-usage": {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The object's id. One that is not a UUID, or another operator's, is 404. */
                id: components["parameters"]["ID"];
            };
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Reset a connection's usage
         * @description Runs the `ResetUsage` workflow and waits for it (at most 10 s, else 504 `timeout`
         *     naming the workflow, which goes on): a new epoch, usage 0, the cutoff lifted.
         */
        post: operations["resetConnectionUsage"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/settings/webhook": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * The operator's webhook endpoint
         * @description Before the first save, `configured` is false and the rest empty.
         */
        get: operations["getWebhook"];
        /**
         * Save the webhook endpoint
         * @description The URL must be http or https, at most 2,048 bytes, and (unless the server allows
         *     private addresses) not name an internal address. The secret (`whsec_…`) is made on the
         *     first save and kept on later ones.
         */
        put: operations["putWebhook"];
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/settings/webhook/rotate-secret": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Give the webhook endpoint a new secret
         * @description The old secret stops signing at once. 404 before the endpoint was first saved.
         */
        post: operations["rotateWebhookSecret"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/settings/webhook/test": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Send a test event to the webhook endpoint
         * @description Runs the `WebhookTest` workflow, which sends one `webhook.test` event (enabled or not)
         *     and logs it, and reports its outcome within 15 s (else 504 `timeout`). Failing to reach
         *     the endpoint is an outcome, not an error.
         */
        post: operations["testWebhook"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/webhook-deliveries": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * The webhook delivery log
         * @description Newest first; page with `before`. `after` is 400.
         */
        get: operations["listWebhookDeliveries"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/webhook-deliveries/{id}/redeliver": {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The object's id. One that is not a UUID, or another operator's, is 404. */
                id: components["parameters"]["ID"];
            };
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Send a logged event again
         * @description Starts a `WebhookRedelivery` workflow that sends the event again (same body, same
         *     `webhook-id`) with the usual retries; the log shows its outcome once its first attempt
         *     is made. 409 `webhook_disabled` while the endpoint is not saved or disabled.
         */
        post: operations["redeliverWebhook"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/admin/password-migration": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * The one-time password migration
         * @description The `PasswordMigration` workflow that hashes legacy plaintext proxy passwords: the
         *     platform's figures for an admin (`scope: platform`), the caller's own rows for anyone
         *     else (`scope: operator`). 503 `unavailable` when Temporal, or a worker for the progress
         *     query, does not answer.
         */
        get: operations["getPasswordMigration"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/device/enroll": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Enroll a device
         * @description Spends the device's single-use enrollment token (401 `invalid_enrollment_token` when it
         *     is unknown or used) and answers the device token and the device's tunnel settings. The
         *     device gets the lowest free address of 100.72.0.0/16 (503 `tunnel_pool_full` when none
         *     is). `noise_public_key`, optional, is the standard base64 of 32 bytes, not all zero; a
         *     key another device has is 409 `key_in_use`.
         */
        post: operations["enrollDevice"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/device/heartbeat": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Report that the device is alive, with its telemetry
         * @description 204 once the device's monitor has what it must hear; 503 `unavailable` with
         *     Retry-After when Temporal is unreachable (the device retries). An unknown or deleted
         *     device is 401. More often than `CELLGATE_HEARTBEAT_EVERY` allows (bursts of 20) is 429
         *     with Retry-After, before Postgres or Temporal see it; a bad body is 400 without
         *     spending the device's rate.
         */
        post: operations["heartbeat"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/device/key": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        /**
         * Register or rotate the device's Noise static key
         * @description For a device that enrolled without a key, or rotates it; a device enrolled before the
         *     tunnel existed gets its tunnel address here. A key another device has is 409 `key_in_use`.
         */
        put: operations["putDeviceKey"];
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
}
export type webhooks = Record<string, never>;
export interface components {
    schemas: {
        /** @description Every error answer. */
        ErrorResponse: {
            error: components["schemas"]["Error"];
        };
        Error: {
            /**
             * @description What went wrong, for programs.
             * @enum {string}
             */
            code: "invalid_json" | "invalid_type" | "unknown_field" | "required" | "invalid" | "too_long" | "out_of_range" | "empty_patch" | "no_session" | "unauthorized" | "invalid_credentials" | "invalid_enrollment_token" | "csrf" | "cross_origin" | "not_found" | "method_not_allowed" | "conflict" | "username_taken" | "key_in_use" | "webhook_disabled" | "body_too_large" | "unsupported_media_type" | "rate_limited" | "internal" | "unavailable" | "busy" | "tunnel_pool_full" | "openvpn_not_configured" | "timeout";
            /** @description What went wrong, for people. */
            message: string;
            /** @description The input at fault, when there is one (a body field or a query parameter). */
            field?: string;
        };
        LoginRequest: {
            /** @description Case and surrounding space do not matter. */
            email: string;
            password: string;
        };
        Login: {
            operator: components["schemas"]["Operator"];
            /** @description Send it as `X-CSRF-Token` with every write made with the session cookie. */
            csrf_token: string;
            /**
             * Format: date-time
             * @description When the session ends.
             */
            expires_at: string;
        };
        Me: {
            operator: components["schemas"]["Operator"];
            /** @description The session's CSRF token; absent when the request was authenticated by an API token. */
            csrf_token?: string;
        };
        Operator: {
            /** Format: uuid */
            id: string;
            email: string;
            /** @description An admin sees the platform's figures of the password migration; everything else is per operator for admins too. */
            is_admin: boolean;
            /** Format: date-time */
            created_at: string;
        };
        CreateTokenRequest: {
            name: components["schemas"]["Name"];
            /** @description The token stops working this many days from now. Leave it out for a token that lasts until revoked. */
            expires_in_days?: number;
        };
        APIToken: {
            /** Format: uuid */
            id: string;
            name: string;
            /** Format: date-time */
            created_at: string;
            /** Format: date-time */
            last_used_at: string | null;
            /**
             * Format: date-time
             * @description From then on the token is 401; null until it is revoked.
             */
            expires_at: string | null;
        };
        CreatedToken: {
            /** Format: uuid */
            id: string;
            name: string;
            /** Format: date-time */
            created_at: string;
            /** Format: date-time */
            expires_at: string | null;
            /** @description The token, `cgp_…`; shown this once. */
            token: string;
        };
        TokenList: {
            tokens: components["schemas"]["APIToken"][];
        };
        /** @description A display name; surrounding space is trimmed. */
        Name: string;
        NameRequest: {
            name: components["schemas"]["Name"];
        };
        /**
         * @description `unknown` until the first heartbeat.
         * @enum {string}
         */
        DeviceStatus: "online" | "offline" | "unknown";
        /** @description What the device reported with its last heartbeat; null where it reported nothing. */
        Telemetry: {
            /** @description Percent. */
            battery: number | null;
            charging: boolean | null;
            signal_dbm: number | null;
            carrier: string | null;
            /**
             * @example LTE
             * @example 5G
             */
            network_type: string | null;
            /** @description The phone's address on the mobile network. */
            cellular_ip: string | null;
            app_version: string | null;
        };
        /**
         * @description A heartbeat's telemetry. Every field is optional (null is the same as leaving it out);
         *     strings are at most 64 bytes without control characters.
         */
        TelemetryRequest: {
            battery?: number | null;
            charging?: boolean | null;
            signal_dbm?: number | null;
            carrier?: string | null;
            network_type?: string | null;
            /** @description An IPv4 or IPv6 address, or empty. */
            cellular_ip?: string | null;
            app_version?: string | null;
        };
        /** @description The fields of a device; see Device and DeviceDetail. */
        DeviceFields: {
            /** Format: uuid */
            id: string;
            name: string;
            status: components["schemas"]["DeviceStatus"];
            /** Format: date-time */
            status_changed_at: string | null;
            /** Format: date-time */
            last_heartbeat_at: string | null;
            /** Format: date-time */
            enrolled_at: string | null;
            /**
             * Format: ipv4
             * @description The device's address in the tunnel network 100.72.0.0/16; null until it has one.
             */
            tunnel_ip: string | null;
            /** @description Whether the device registered a Noise static key (the key itself is never shown). */
            has_tunnel_key: boolean;
            telemetry: components["schemas"]["Telemetry"];
            /** Format: date-time */
            created_at: string;
            /** Format: date-time */
            updated_at: string;
        };
        /** @description An operator's phone. */
        Device: components["schemas"]["DeviceFields"];
        /** @description A device as `GET /devices/{id}` shows it. */
        DeviceDetail: {
            /**
             * @description The workflow ID of the device's DeviceMonitor, for the Temporal CLI.
             * @example device-monitor:0190e5e5-1c2b-7d3e-8f40-5a6b7c8d9e0f
             */
            monitor_workflow_id: string;
            /**
             * Format: uri
             * @description The DeviceMonitor in the Temporal Web UI; absent when the server knows no Web UI (`TEMPORAL_UI_URL`).
             */
            monitor_workflow_url?: string;
            /** @description Whether the relay holds a tunnel session of the device; absent when no relay is configured, or it did not answer. */
            tunnel_live?: boolean;
        } & components["schemas"]["DeviceFields"];
        CreatedDevice: {
            device: components["schemas"]["Device"];
            /** @description The single-use token the device enrolls with; shown this once. */
            enrollment_token: string;
        };
        DeviceList: {
            devices: components["schemas"]["Device"][];
            /**
             * Format: uuid
             * @description The cursor of the next page; null on the last.
             */
            next_after: string | null;
        };
        /** @description One online or offline transition of a device. */
        StatusEvent: {
            /** Format: int64 */
            id: number;
            status: components["schemas"]["DeviceStatus"];
            /** Format: date-time */
            occurred_at: string;
        };
        StatusEventList: {
            events: components["schemas"]["StatusEvent"][];
            /**
             * Format: int64
             * @description The cursor of the next page; null on the last.
             */
            next_before: number | null;
        };
        /** @enum {string} */
        Protocol: "openvpn" | "http" | "socks5";
        /**
         * Format: int64
         * @description A number of bytes.
         */
        Bytes: number;
        CreateConnectionRequest: {
            /**
             * Format: uuid
             * @description One of the operator's devices.
             */
            device_id: string;
            name: components["schemas"]["Name"];
            protocol: components["schemas"]["Protocol"];
            /** @description Unique across all operators; generated when left out. */
            username?: string;
            /** @description At least 8 characters and at most 72 bytes; generated when left out. */
            password?: string;
            /** @description The quota in bytes; 0 (or left out) is unlimited. */
            bandwidth_limit?: components["schemas"]["Bytes"];
        };
        /** @description At least one of the fields (else 400 `empty_patch`). */
        UpdateConnectionRequest: {
            name?: components["schemas"]["Name"];
            /** @description The quota in bytes; 0 is unlimited. */
            bandwidth_limit?: components["schemas"]["Bytes"];
            /** @description A disabled connection's logins are refused. */
            enabled?: boolean;
        };
        /** @description The fields of a connection; see Connection and ConnectionDetail. */
        ConnectionFields: {
            /** Format: uuid */
            id: string;
            /** Format: uuid */
            device_id: string;
            name: string;
            protocol: components["schemas"]["Protocol"];
            username: string;
            /** @description The quota in bytes; 0 is unlimited. */
            bandwidth_limit: components["schemas"]["Bytes"];
            /** @description Bytes used in this epoch, both directions. */
            bandwidth_used: components["schemas"]["Bytes"];
            /**
             * Format: int64
             * @description Goes up by one with every reset.
             */
            usage_epoch: number;
            /** @description Whether the connection used up its quota in this epoch and is blocked. */
            cut_off: boolean;
            /** Format: date-time */
            cut_off_at: string | null;
            enabled: boolean;
            /** Format: date-time */
            password_changed_at: string;
            /** Format: date-time */
            created_at: string;
            /** Format: date-time */
            updated_at: string;
        };
        /** @description A proxy connection, as the writes that change it answer. */
        Connection: components["schemas"]["ConnectionFields"];
        /** @description A connection as the reads show it, with its last reset and its quota workflow's link. */
        ConnectionDetail: {
            /** @description The last usage reset; null when there was none. */
            last_reset: components["schemas"]["UsageReset"] | null;
            /**
             * Format: uri
             * @description The connection's ConnectionQuota workflow in the Temporal Web UI; absent when the server knows no Web UI.
             */
            quota_workflow_url?: string;
        } & components["schemas"]["ConnectionFields"];
        /** @description The answer that shows a password, the only moment it exists in plaintext. */
        ConnectionWithPassword: {
            connection: components["schemas"]["Connection"];
            password: string;
            /** @description For an OpenVPN connection on a server with OpenVPN set up, the client profile with the credentials inline; shown this once too. */
            ovpn?: string;
        };
        ConnectionList: {
            connections: components["schemas"]["ConnectionDetail"][];
            /**
             * Format: uuid
             * @description The cursor of the next page; null on the last.
             */
            next_after: string | null;
        };
        /** @description A recorded usage reset of a connection. */
        UsageReset: {
            /** Format: uuid */
            connection_id: string;
            request_id: string;
            /** Format: int64 */
            epoch_before: number;
            /** Format: int64 */
            epoch_after: number;
            used_before: components["schemas"]["Bytes"];
            /** @description The email of the operator who asked */
            requested_by: string;
            /** Format: date-time */
            reset_at: string;
        };
        /** @description What a `ResetUsage` workflow did. */
        ResetResult: {
            /** Format: uuid */
            connection_id: string;
            request_id: string;
            /** Format: int64 */
            epoch_before: number;
            /**
             * Format: int64
             * @description The new epoch.
             */
            epoch: number;
            used_before: components["schemas"]["Bytes"];
            used: components["schemas"]["Bytes"];
            cut_off: boolean;
            requested_by: string;
            /** Format: date-time */
            reset_at: string;
        };
        ConnectionReset: {
            connection: components["schemas"]["ConnectionDetail"];
            reset: components["schemas"]["ResetResult"];
        };
        DeviceResets: {
            /** Format: uuid */
            device_id: string;
            resets: components["schemas"]["ResetResult"][];
        };
        WebhookRequest: {
            /** Format: uri */
            url: string;
            enabled: boolean;
        };
        WebhookSetting: {
            /** @description False until the endpoint is first saved. */
            configured: boolean;
            url: string;
            enabled: boolean;
            /** @description The signing secret (`whsec_…`), for the receiver to verify signatures; "" until the first save. */
            secret: string;
            /** Format: date-time */
            created_at: string | null;
            /** Format: date-time */
            updated_at: string | null;
        };
        /**
         * @description What went wrong with a delivery attempt, as a category only: never an error's text,
         *     which could name the addresses the platform dialed.
         * @enum {string}
         */
        WebhookErrorCategory: "address not allowed" | "DNS error" | "connection refused" | "timeout" | "TLS error" | "too many redirects" | "invalid URL" | "network error" | "HTTP 1xx" | "HTTP 3xx" | "HTTP 4xx" | "HTTP 5xx" | "unexpected HTTP status" | "internal error" | "no webhook endpoint saved";
        WebhookTestResult: {
            /**
             * Format: uuid
             * @description The test event's id
             */
            event_id: string;
            /** @description The endpoint's HTTP status; 0 when it did not answer. */
            status_code: number;
            /** Format: int64 */
            latency_ms: number;
            /** @description The category of what went wrong; "" when the event was delivered. */
            error: components["schemas"]["WebhookErrorCategory"] | "";
        };
        /** @enum {string} */
        WebhookEventType: "device.offline" | "device.online" | "connection.quota_warning" | "connection.quota_exceeded" | "webhook.test";
        /** @enum {string} */
        DeliveryStatus: "pending" | "delivered" | "failed" | "skipped";
        /** @description One logged webhook event and its delivery attempts. */
        Delivery: {
            /**
             * Format: uuid
             * @description The event's id
             */
            id: string;
            /** Format: uuid */
            device_id: string | null;
            /** Format: uuid */
            connection_id: string | null;
            type: components["schemas"]["WebhookEventType"];
            /** @description The event's JSON body as sent (`type`, `timestamp`, `data`). */
            payload: {
                [key: string]: unknown;
            };
            status: components["schemas"]["DeliveryStatus"];
            attempts: number;
            last_status_code: number | null;
            last_error: components["schemas"]["WebhookErrorCategory"] | null;
            latency_ms: number | null;
            /** Format: date-time */
            last_attempt_at: string | null;
            /** Format: date-time */
            delivered_at: string | null;
            /** Format: date-time */
            created_at: string;
        };
        DeliveryList: {
            deliveries: components["schemas"]["Delivery"][];
            /**
             * Format: uuid
             * @description The cursor of the next page; null on the last.
             */
            next_before: string | null;
        };
        Redelivery: {
            /**
             * Format: uuid
             * @description The delivery's (the event's) id.
             */
            id: string;
            /** @description The WebhookRedelivery workflow that sends it. */
            workflow_id: string;
        };
        PasswordMigration: {
            /** @enum {string} */
            status: "not_started" | "running" | "completed" | "failed";
            /**
             * @description Whose rows the figures count; `platform` for admins.
             * @enum {string}
             */
            scope: "platform" | "operator";
            /**
             * Format: int64
             * @description Rows holding plaintext when it started (or waiting for it, before it started).
             */
            total: number;
            /**
             * Format: int64
             * @description Rows that hold no plaintext now.
             */
            done: number;
            /**
             * Format: int64
             * @description Rows it went past and left with plaintext.
             */
            failed: number;
            rows_per_second: number;
            /** Format: date-time */
            started_at: string | null;
            /**
             * Format: date-time
             * @description Absent until it finished.
             */
            finished_at?: string;
            /** @description Why it failed; absent unless it failed. */
            error?: string;
            /**
             * @description The run's history in the Temporal Web UI, or the list of the workflow's runs before
             *     it started; "" when the server knows no Web UI.
             */
            workflow_url: string;
        };
        EnrollRequest: {
            enrollment_token: string;
            noise_public_key?: components["schemas"]["NoiseKey"];
        };
        DeviceKeyRequest: {
            noise_public_key: components["schemas"]["NoiseKey"];
        };
        /** @description A Noise static public key, the standard base64 of 32 bytes that are not all zero. */
        NoiseKey: string;
        /** @description The fields of the tunnel settings; see TunnelSettings and Enrollment. */
        TunnelFields: {
            /** Format: uuid */
            device_id: string;
            /**
             * Format: ipv4
             * @description The device's address in the tunnel network.
             */
            tunnel_ip: string;
            /** @description The relay's Noise static public key; "" until configured. */
            tunnel_public_key: string;
            /** @description The relay's host:port; "" until configured. */
            tunnel_endpoint: string;
        };
        /** @description What a device needs to reach the relay. */
        TunnelSettings: components["schemas"]["TunnelFields"];
        /** @description The tunnel settings and the device token. */
        Enrollment: {
            /** @description The device's token for the device API; shown this once. */
            device_token: string;
        } & components["schemas"]["TunnelFields"];
    };
    responses: {
        /**
         * @description The request is malformed: `invalid_json`, `invalid_type`, `unknown_field`, `required`,
         *     `invalid`, `too_long`, `out_of_range`, `empty_patch` or `no_session`; `field` names
         *     the input when there is one.
         */
        BadRequest: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                "application/json": components["schemas"]["ErrorResponse"];
            };
        };
        /** @description No valid credentials (`unauthorized`, or `invalid_enrollment_token`). */
        Unauthorized: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                "application/json": components["schemas"]["ErrorResponse"];
            };
        };
        /** @description A cookie-authenticated write without the session's `X-CSRF-Token` (`csrf`). */
        Forbidden: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                "application/json": components["schemas"]["ErrorResponse"];
            };
        };
        /** @description No such object of the caller's (`not_found`). */
        NotFound: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                "application/json": components["schemas"]["ErrorResponse"];
            };
        };
        /** @description The request conflicts with the state (`conflict`, `username_taken`, `key_in_use`, `webhook_disabled`). */
        Conflict: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                "application/json": components["schemas"]["ErrorResponse"];
            };
        };
        /** @description The body is over 64 KiB (`body_too_large`). */
        TooLarge: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                "application/json": components["schemas"]["ErrorResponse"];
            };
        };
        /** @description The body is not declared `application/json` (`unsupported_media_type`). */
        UnsupportedMediaType: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                "application/json": components["schemas"]["ErrorResponse"];
            };
        };
        /** @description Too many attempts (`rate_limited`); try again after Retry-After. */
        TooManyRequests: {
            headers: {
                "Retry-After": components["headers"]["RetryAfter"];
                [name: string]: unknown;
            };
            content: {
                "application/json": components["schemas"]["ErrorResponse"];
            };
        };
        /**
         * @description Something the request needs does not answer now (`unavailable`: Temporal; `busy`:
         *     every login slot; `tunnel_pool_full`; `openvpn_not_configured`). Where the caller
         *     should retry, Retry-After says when.
         */
        Unavailable: {
            headers: {
                "Retry-After": components["headers"]["RetryAfter"];
                [name: string]: unknown;
            };
            content: {
                "application/json": components["schemas"]["ErrorResponse"];
            };
        };
        /** @description The workflow did not finish in time (`timeout`); it goes on. */
        Timeout: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                "application/json": components["schemas"]["ErrorResponse"];
            };
        };
    };
    parameters: {
        /** @description The object's id. One that is not a UUID, or another operator's, is 404. */
        ID: string;
        /** @description The page size. */
        Limit: number;
        /** @description The `next_after` of the previous page. */
        After: string;
    };
    requestBodies: never;
    headers: {
        /** @description Whole seconds to wait before trying again. */
        RetryAfter: number;
    };
    pathItems: never;
}
export type $defs = Record<string, never>;
export interface operations {
    getOpenAPI: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The document. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": Record<string, never>;
                };
            };
        };
    };
    login: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["LoginRequest"];
            };
        };
        responses: {
            /** @description Logged in. */
            200: {
                headers: {
                    /** @description The session cookie, `cellgate_session=cgs_…`. */
                    "Set-Cookie"?: string;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Login"];
                };
            };
            400: components["responses"]["BadRequest"];
            /** @description Wrong email or password (`invalid_credentials`). */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description A browser sent the login on another site's behalf (`cross_origin`). */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            413: components["responses"]["TooLarge"];
            415: components["responses"]["UnsupportedMediaType"];
            429: components["responses"]["TooManyRequests"];
            503: components["responses"]["Unavailable"];
        };
    };
    logout: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The session is revoked. */
            204: {
                headers: {
                    [name: string]: unknown;
                };
                content?: never;
            };
            400: components["responses"]["BadRequest"];
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
        };
    };
    getMe: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The operator. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Me"];
                };
            };
            401: components["responses"]["Unauthorized"];
        };
    };
    listTokens: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The tokens, oldest first. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["TokenList"];
                };
            };
            401: components["responses"]["Unauthorized"];
        };
    };
    createToken: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["CreateTokenRequest"];
            };
        };
        responses: {
            /** @description The token, shown once. */
            201: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["CreatedToken"];
                };
            };
            400: components["responses"]["BadRequest"];
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            413: components["responses"]["TooLarge"];
            415: components["responses"]["UnsupportedMediaType"];
        };
    };
    deleteToken: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The object's id. One that is not a UUID, or another operator's, is 404. */
                id: components["parameters"]["ID"];
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The token is revoked. */
            204: {
                headers: {
                    [name: string]: unknown;
                };
                content?: never;
            };
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            404: components["responses"]["NotFound"];
        };
    };
    listDevices: {
        parameters: {
            query?: {
                /** @description The page size. */
                limit?: components["parameters"]["Limit"];
                /** @description The `next_after` of the previous page. */
                after?: components["parameters"]["After"];
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description A page of devices, in id order. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["DeviceList"];
                };
            };
            400: components["responses"]["BadRequest"];
            401: components["responses"]["Unauthorized"];
        };
    };
    createDevice: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["NameRequest"];
            };
        };
        responses: {
            /** @description The device and its enrollment token. */
            201: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["CreatedDevice"];
                };
            };
            400: components["responses"]["BadRequest"];
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            413: components["responses"]["TooLarge"];
            415: components["responses"]["UnsupportedMediaType"];
        };
    };
    getDevice: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The object's id. One that is not a UUID, or another operator's, is 404. */
                id: components["parameters"]["ID"];
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The device. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        device: components["schemas"]["DeviceDetail"];
                    };
                };
            };
            401: components["responses"]["Unauthorized"];
            404: components["responses"]["NotFound"];
        };
    };
    deleteDevice: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The object's id. One that is not a UUID, or another operator's, is 404. */
                id: components["parameters"]["ID"];
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The device is deleted. */
            204: {
                headers: {
                    [name: string]: unknown;
                };
                content?: never;
            };
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            404: components["responses"]["NotFound"];
            409: components["responses"]["Conflict"];
        };
    };
    updateDevice: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The object's id. One that is not a UUID, or another operator's, is 404. */
                id: components["parameters"]["ID"];
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["NameRequest"];
            };
        };
        responses: {
            /** @description The device as renamed. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        device: components["schemas"]["Device"];
                    };
                };
            };
            400: components["responses"]["BadRequest"];
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            404: components["responses"]["NotFound"];
            413: components["responses"]["TooLarge"];
            415: components["responses"]["UnsupportedMediaType"];
        };
    };
    listDeviceEvents: {
        parameters: {
            query?: {
                /** @description The page size. */
                limit?: components["parameters"]["Limit"];
                /** @description The `next_before` of the previous page. */
                before?: number;
            };
            header?: never;
            path: {
                /** @description The object's id. One that is not a UUID, or another operator's, is 404. */
                id: components["parameters"]["ID"];
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description A page of status events. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["StatusEventList"];
                };
            };
            400: components["responses"]["BadRequest"];
            401: components["responses"]["Unauthorized"];
            404: components["responses"]["NotFound"];
        };
    };
    resetDeviceUsage: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The object's id. One that is not a UUID, or another operator's, is 404. */
                id: components["parameters"]["ID"];
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The resets, one per connection. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["DeviceResets"];
                };
            };
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            404: components["responses"]["NotFound"];
            503: components["responses"]["Unavailable"];
            504: components["responses"]["Timeout"];
        };
    };
    listConnections: {
        parameters: {
            query?: {
                /** @description Only the connections of this device. */
                device_id?: string;
                /** @description The page size. */
                limit?: components["parameters"]["Limit"];
                /** @description The `next_after` of the previous page. */
                after?: components["parameters"]["After"];
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description A page of connections, in id order. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ConnectionList"];
                };
            };
            400: components["responses"]["BadRequest"];
            401: components["responses"]["Unauthorized"];
        };
    };
    createConnection: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["CreateConnectionRequest"];
            };
        };
        responses: {
            /** @description The connection and its password, shown once. */
            201: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ConnectionWithPassword"];
                };
            };
            400: components["responses"]["BadRequest"];
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            404: components["responses"]["NotFound"];
            409: components["responses"]["Conflict"];
            413: components["responses"]["TooLarge"];
            415: components["responses"]["UnsupportedMediaType"];
            429: components["responses"]["TooManyRequests"];
        };
    };
    getConnection: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The object's id. One that is not a UUID, or another operator's, is 404. */
                id: components["parameters"]["ID"];
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The connection. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        connection: components["schemas"]["ConnectionDetail"];
                    };
                };
            };
            401: components["responses"]["Unauthorized"];
            404: components["responses"]["NotFound"];
        };
    };
    deleteConnection: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The object's id. One that is not a UUID, or another operator's, is 404. */
                id: components["parameters"]["ID"];
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The connection is deleted. */
            204: {
                headers: {
                    [name: string]: unknown;
                };
                content?: never;
            };
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            404: components["responses"]["NotFound"];
        };
    };
    updateConnection: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The object's id. One that is not a UUID, or another operator's, is 404. */
                id: components["parameters"]["ID"];
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["UpdateConnectionRequest"];
            };
        };
        responses: {
            /** @description The connection as changed. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        connection: components["schemas"]["Connection"];
                    };
                };
            };
            400: components["responses"]["BadRequest"];
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            404: components["responses"]["NotFound"];
            413: components["responses"]["TooLarge"];
            415: components["responses"]["UnsupportedMediaType"];
            503: components["responses"]["Unavailable"];
        };
    };
    getConnectionProfile: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The object's id. One that is not a UUID, or another operator's, is 404. */
                id: components["parameters"]["ID"];
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The profile, as an attachment named after the username. */
            200: {
                headers: {
                    /** @description `attachment; filename="<username>.ovpn"` */
                    "Content-Disposition"?: string;
                    [name: string]: unknown;
                };
                content: {
                    "application/x-openvpn-profile": string;
                };
            };
            401: components["responses"]["Unauthorized"];
            404: components["responses"]["NotFound"];
            503: components["responses"]["Unavailable"];
        };
    };
    regeneratePassword: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The object's id. One that is not a UUID, or another operator's, is 404. */
                id: components["parameters"]["ID"];
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The connection and its new password, shown once. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ConnectionWithPassword"];
                };
            };
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            404: components["responses"]["NotFound"];
        };
    };
    resetConnectionUsage: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The object's id. One that is not a UUID, or another operator's, is 404. */
                id: components["parameters"]["ID"];
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The connection after the reset, and the reset. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ConnectionReset"];
                };
            };
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            404: components["responses"]["NotFound"];
            503: components["responses"]["Unavailable"];
            504: components["responses"]["Timeout"];
        };
    };
    getWebhook: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The webhook setting. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["WebhookSetting"];
                };
            };
            401: components["responses"]["Unauthorized"];
        };
    };
    putWebhook: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["WebhookRequest"];
            };
        };
        responses: {
            /** @description The webhook setting as saved. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["WebhookSetting"];
                };
            };
            400: components["responses"]["BadRequest"];
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            413: components["responses"]["TooLarge"];
            415: components["responses"]["UnsupportedMediaType"];
        };
    };
    rotateWebhookSecret: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The webhook setting with its new secret. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["WebhookSetting"];
                };
            };
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            404: components["responses"]["NotFound"];
        };
    };
    testWebhook: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The outcome. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["WebhookTestResult"];
                };
            };
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            503: components["responses"]["Unavailable"];
            504: components["responses"]["Timeout"];
        };
    };
    listWebhookDeliveries: {
        parameters: {
            query?: {
                /** @description Only the events of this device. */
                device_id?: string;
                /** @description Only events of this type, such as `device.offline`. */
                type?: string;
                /** @description Only deliveries in this state. */
                status?: components["schemas"]["DeliveryStatus"];
                /** @description The page size. */
                limit?: components["parameters"]["Limit"];
                /** @description The `next_before` of the previous page. */
                before?: string;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description A page of deliveries. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["DeliveryList"];
                };
            };
            400: components["responses"]["BadRequest"];
            401: components["responses"]["Unauthorized"];
        };
    };
    redeliverWebhook: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The object's id. One that is not a UUID, or another operator's, is 404. */
                id: components["parameters"]["ID"];
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The redelivery has started. */
            202: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Redelivery"];
                };
            };
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            404: components["responses"]["NotFound"];
            409: components["responses"]["Conflict"];
            503: components["responses"]["Unavailable"];
        };
    };
    getPasswordMigration: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The migration's status. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["PasswordMigration"];
                };
            };
            401: components["responses"]["Unauthorized"];
            503: components["responses"]["Unavailable"];
        };
    };
    enrollDevice: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["EnrollRequest"];
            };
        };
        responses: {
            /** @description The device token (shown once) and the tunnel settings. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Enrollment"];
                };
            };
            400: components["responses"]["BadRequest"];
            401: components["responses"]["Unauthorized"];
            409: components["responses"]["Conflict"];
            413: components["responses"]["TooLarge"];
            415: components["responses"]["UnsupportedMediaType"];
            503: components["responses"]["Unavailable"];
        };
    };
    heartbeat: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["TelemetryRequest"];
            };
        };
        responses: {
            /** @description The heartbeat is recorded. */
            204: {
                headers: {
                    [name: string]: unknown;
                };
                content?: never;
            };
            400: components["responses"]["BadRequest"];
            401: components["responses"]["Unauthorized"];
            413: components["responses"]["TooLarge"];
            415: components["responses"]["UnsupportedMediaType"];
            429: components["responses"]["TooManyRequests"];
            503: components["responses"]["Unavailable"];
        };
    };
    putDeviceKey: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["DeviceKeyRequest"];
            };
        };
        responses: {
            /** @description The device's tunnel settings. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["TunnelSettings"];
                };
            };
            400: components["responses"]["BadRequest"];
            401: components["responses"]["Unauthorized"];
            409: components["responses"]["Conflict"];
            413: components["responses"]["TooLarge"];
            415: components["responses"]["UnsupportedMediaType"];
            503: components["responses"]["Unavailable"];
        };
    };
}
