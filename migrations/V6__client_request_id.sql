-- deskgraph: the request id a client sends is kept apart from the server's own.
--
-- The server generates `app.request_id` for every request (a UUIDv7; `job:<id>:<attempt>` for jobs) and
-- only that one correlates logs, responses, audit entries and ledger entries. An `x-request-id` the
-- client sent is only a claim: it goes to `app.client_request_id` (set in the same round trip as the
-- other settings, printable ASCII of at most 128 characters) and from there into
-- `audit_log.client_request_id`, as evidence of what the client said — never into `request_id`.
--
-- The hash chain covers it, without touching the entries written before this migration: the canonical
-- text gains a thirteenth field only when `client_request_id` is not null. Older entries (all null) and
-- new entries without one hash exactly as before; an entry with one cannot have it changed, added or
-- removed without breaking its hash (the fields are length-prefixed, so the extra field cannot be
-- confused with the end of `after`). src/audit/chain.rs repeats the rule.

create function app.current_client_request_id() returns text
    language sql stable parallel safe
    as $$ select nullif(current_setting('app.client_request_id', true), '') $$;

-- Nullable, no default: adding it rewrites no row (and fires no append-only trigger).
alter table audit_log add column client_request_id text;

-- V3's canonical text, then `|<UTF-8 byte length>:<client request id>` when there is one.
create function internal.audit_canonical(
    p_org_id uuid, p_seq bigint, p_occurred_at timestamptz, p_actor_user_id uuid, p_actor_api_key_id uuid,
    p_actor_role text, p_request_id text, p_action text, p_table_name text, p_row_id text,
    p_before jsonb, p_after jsonb, p_client_request_id text
) returns text
    language sql
    stable
    set search_path = pg_catalog, pg_temp
    as $$
    select internal.audit_canonical(p_org_id, p_seq, p_occurred_at, p_actor_user_id, p_actor_api_key_id,
                                    p_actor_role, p_request_id, p_action, p_table_name, p_row_id,
                                    p_before, p_after)
        || coalesce('|' || octet_length(convert_to(p_client_request_id, 'UTF8')) || ':' || p_client_request_id, '')
$$;
revoke all on function internal.audit_canonical(uuid, bigint, timestamptz, uuid, uuid, text, text, text, text, text, jsonb, jsonb, text) from public;

-- V3's trigger function (same arguments, SECURITY DEFINER, search_path and owner), now also recording
-- the client's request id and hashing it as above. `create or replace` keeps the triggers and grants.
create or replace function internal.audit_row() returns trigger
    language plpgsql
    security definer
    set search_path = pg_catalog, pg_temp
    as $$
declare
    v_full jsonb;
    v_before jsonb;
    v_after jsonb;
    v_skip text[] := coalesce(tg_argv[2:], '{}');
    v_org uuid;
    v_seq bigint;
    v_prev bytea;
    v_hash bytea;
    v_at timestamptz := clock_timestamp();
    v_user uuid := app.current_user_id();
    v_key uuid := app.current_api_key_id();
    v_role text := app.current_app_role();
    v_request text := app.current_request_id();
    v_client_request text := app.current_client_request_id();
begin
    if tg_op <> 'INSERT' then
        v_full := to_jsonb(old);
        v_before := v_full - v_skip;
    end if;
    if tg_op <> 'DELETE' then
        v_full := to_jsonb(new);
        v_after := v_full - v_skip;
    end if;
    if tg_op = 'UPDATE' and (v_before - 'updated_at') = (v_after - 'updated_at') then
        return null;
    end if;
    v_org := (v_full ->> tg_argv[0])::uuid;
    -- A role is the role in the current organization; a write into another one (accepting an
    -- invitation) records the user without it.
    if v_org is distinct from app.current_org_id() then
        v_role := null;
    end if;

    -- The organization's write lock orders the chain (and is already held by a tenant transaction).
    perform app.lock_org_for_writes(v_org);
    select h.last_seq, h.last_hash into v_seq, v_prev from public.audit_heads h where h.org_id = v_org;
    if not found then
        v_seq := 0;
        v_prev := decode(repeat('00', 32), 'hex');
        insert into public.audit_heads (org_id, last_seq, last_hash) values (v_org, 0, v_prev);
    end if;
    v_seq := v_seq + 1;
    v_hash := sha256(v_prev || convert_to(internal.audit_canonical(
        v_org, v_seq, v_at, v_user, v_key, v_role, v_request, tg_op, tg_table_name,
        v_full ->> tg_argv[1], v_before, v_after, v_client_request), 'UTF8'));
    insert into public.audit_log (org_id, seq, occurred_at, actor_user_id, actor_api_key_id, actor_role,
                                  request_id, action, table_name, row_id, before, after, prev_hash, hash,
                                  client_request_id)
    values (v_org, v_seq, v_at, v_user, v_key, v_role, v_request, tg_op, tg_table_name,
            v_full ->> tg_argv[1], v_before, v_after, v_prev, v_hash, v_client_request);
    update public.audit_heads set last_seq = v_seq, last_hash = v_hash where org_id = v_org;
    return null;
end
$$;
revoke all on function internal.audit_row() from public;
