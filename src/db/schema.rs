// @generated automatically by Diesel CLI.

diesel::table! {
    api_tokens (token_hash) {
        token_hash -> Text,
        eshop_id -> BigInt,
        created_at -> BigInt,
    }
}

diesel::table! {
    eshops (id) {
        id -> BigInt,
        name -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    idempotency_keys (eshop_id, idem_key) {
        eshop_id -> BigInt,
        idem_key -> Text,
        job_id -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    job_result_chunks (job_id, seq) {
        job_id -> Text,
        seq -> Integer,
        data -> Binary,
    }
}

diesel::table! {
    jobs (id) {
        id -> Text,
        eshop_id -> BigInt,
        endpoint -> Text,
        queue -> Text,
        status -> Text,
        params -> Text,
        creation_time -> BigInt,
        started_time -> Nullable<BigInt>,
        completion_time -> Nullable<BigInt>,
        attempt -> Integer,
        lease_owner -> Nullable<Text>,
        lease_expires -> Nullable<BigInt>,
        result_secret -> Text,
        result_ext -> Nullable<Text>,
        result_content_type -> Nullable<Text>,
        result_size -> Nullable<BigInt>,
        valid_until -> Nullable<BigInt>,
        log -> Text,
        result_inline -> Nullable<Binary>,
    }
}

diesel::table! {
    node_heartbeats (node) {
        node -> Text,
        started_at -> BigInt,
        heartbeat_at -> BigInt,
        minutes -> Text,
    }
}

diesel::table! {
    notification_attempts (notification_id, attempt) {
        notification_id -> Text,
        attempt -> Integer,
        attempted_at -> BigInt,
        url -> Nullable<Text>,
        status_code -> Nullable<Integer>,
        duration_ms -> BigInt,
        error -> Nullable<Text>,
        response_excerpt -> Nullable<Text>,
    }
}

diesel::table! {
    notifications (id) {
        id -> Text,
        eshop_id -> BigInt,
        event -> Text,
        event_instance -> Text,
        payload -> Text,
        status -> Text,
        attempts -> Integer,
        next_attempt_at -> Nullable<BigInt>,
        created_at -> BigInt,
        webhook_id -> Nullable<Text>,
        url -> Nullable<Text>,
        claimed_by -> Nullable<Text>,
        claim_expires -> Nullable<BigInt>,
        last_attempt_at -> Nullable<BigInt>,
        last_status_code -> Nullable<Integer>,
        last_duration_ms -> Nullable<BigInt>,
        last_error -> Nullable<Text>,
        redelivery -> Bool,
    }
}

diesel::table! {
    operator_sessions (id_hash) {
        id_hash -> Text,
        operator -> Text,
        csrf -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
    }
}

diesel::table! {
    operators (name) {
        name -> Text,
        token_hash -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    product_images (product_guid, name) {
        product_guid -> Text,
        eshop_id -> BigInt,
        name -> Text,
        priority -> Integer,
        description -> Nullable<Text>,
        content_type -> Text,
        size -> BigInt,
        md5 -> Text,
        source_url -> Text,
        created -> BigInt,
        data -> Binary,
    }
}

diesel::table! {
    products (guid) {
        guid -> Text,
        eshop_id -> BigInt,
        code -> Text,
        name -> Text,
        visibility -> Text,
        creation_time -> BigInt,
        change_time -> BigInt,
    }
}

diesel::table! {
    signature_keys (id) {
        id -> Text,
        eshop_id -> BigInt,
        secret -> Text,
        created_at -> BigInt,
        expires_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    webhooks (id) {
        id -> Text,
        eshop_id -> BigInt,
        event -> Text,
        url -> Text,
        active -> Bool,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::joinable!(api_tokens -> eshops (eshop_id));
diesel::joinable!(notification_attempts -> notifications (notification_id));
diesel::joinable!(operator_sessions -> operators (operator));
diesel::joinable!(product_images -> products (product_guid));
diesel::joinable!(products -> eshops (eshop_id));
diesel::joinable!(signature_keys -> eshops (eshop_id));
diesel::joinable!(webhooks -> eshops (eshop_id));

diesel::allow_tables_to_appear_in_same_query!(
    api_tokens,
    eshops,
    idempotency_keys,
    job_result_chunks,
    jobs,
    node_heartbeats,
    notification_attempts,
    notifications,
    operator_sessions,
    operators,
    product_images,
    products,
    signature_keys,
    webhooks,
);
