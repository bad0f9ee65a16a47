-- deskgraph: the audit trail. Every INSERT, UPDATE and DELETE on a tenant table writes an entry, from a
-- trigger in the same transaction (a rolled-back operation leaves none), hash-chained per organization.
--
-- * `audit_log` is append-only for everyone: the runtime role may only read it (owners and admins, by a
--   RESTRICTIVE policy), and a trigger refuses UPDATE, DELETE and TRUNCATE even to its owner.
-- * Entry n of an organization stores `prev_hash` (entry n-1's hash; 32 zero bytes for n = 1) and
--   `hash = sha256(prev_hash || canonical(entry))`, with `canonical` defined by internal.audit_canonical and,
--   independently, by the verifier in src/audit/chain.rs.
-- * `audit_heads` holds each organization's last sequence number and hash. The organization's write lock
--   (app.lock_org_for_writes) orders the chain, so audited writes of one organization serialise until
--   they commit.
-- * New tenant tables must get an `audit` trigger too; tests/it/catalog.rs fails when one has none.

create table audit_log (
    org_id uuid not null,
    seq bigint not null,
    occurred_at timestamptz not null,
    actor_user_id uuid,
    actor_api_key_id uuid,
    actor_role text,
    request_id text,
    action text not null,
    table_name text not null,
    row_id text,
    before jsonb,
    after jsonb,
    prev_hash bytea not null,
    hash bytea not null,
    primary key (org_id, seq),
    constraint audit_log_action_check check (action in ('INSERT', 'UPDATE', 'DELETE'))
);
create index audit_log_table_idx on audit_log (org_id, table_name, seq);

create table audit_heads (
    org_id uuid primary key,
    last_seq bigint not null,
    last_hash bytea not null
);

-- The canonical text an entry's hash covers: each field as `<UTF-8 byte length>:<text>` ('-' for null),
-- joined by '|', after a version tag. Timestamps in UTC with microseconds; JSON as PostgreSQL's jsonb
-- text (deterministic for a given value).
create function internal.audit_canonical(
    p_org_id uuid, p_seq bigint, p_occurred_at timestamptz, p_actor_user_id uuid, p_actor_api_key_id uuid,
    p_actor_role text, p_request_id text, p_action text, p_table_name text, p_row_id text,
    p_before jsonb, p_after jsonb
) returns text
    language sql
    stable
    set search_path = pg_catalog, pg_temp
    as $$
    select 'v1|' || array_to_string(array(
        select coalesce(octet_length(convert_to(f, 'UTF8')) || ':' || f, '-')
          from unnest(array[
              p_org_id::text,
              p_seq::text,
              to_char(p_occurred_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
              p_actor_user_id::text,
              p_actor_api_key_id::text,
              p_actor_role,
              p_request_id,
              p_action,
              p_table_name,
              p_row_id,
              p_before::text,
              p_after::text
          ]) with ordinality as t (f, n)
         order by n
    ), '|')
$$;

-- Trigger arguments: the column holding the organization id, the column holding the row's id, then
-- columns left out of `before`/`after` (secrets, derived or noisy columns). An UPDATE that changes
-- nothing but those columns and `updated_at` writes no entry.
-- SECURITY DEFINER: the runtime role cannot write audit_log or audit_heads at all (a trigger function
-- cannot be called directly).
create function internal.audit_row() returns trigger
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
        v_full ->> tg_argv[1], v_before, v_after), 'UTF8'));
    insert into public.audit_log (org_id, seq, occurred_at, actor_user_id, actor_api_key_id, actor_role,
                                  request_id, action, table_name, row_id, before, after, prev_hash, hash)
    values (v_org, v_seq, v_at, v_user, v_key, v_role, v_request, tg_op, tg_table_name,
            v_full ->> tg_argv[1], v_before, v_after, v_prev, v_hash);
    update public.audit_heads set last_seq = v_seq, last_hash = v_hash where org_id = v_org;
    return null;
end
$$;
revoke all on function internal.audit_row() from public;
revoke all on function internal.audit_canonical(uuid, bigint, timestamptz, uuid, uuid, text, text, text, text, text, jsonb, jsonb) from public;

-- Every write statement on a tenant table first takes the current organization's write lock (before
-- the statement locks any row), so that all writers of an organization lock in one order. Writes into
-- another organization (accept_invitation) switch the context to it first.
create function internal.lock_current_org() returns trigger
    language plpgsql
    set search_path = pg_catalog, pg_temp
    as $$
begin
    perform app.lock_org_for_writes(app.current_org_id());
    return null;
end
$$;
revoke all on function internal.lock_current_org() from public;

create trigger audit after insert or update or delete on organizations
    for each row execute function internal.audit_row('id', 'id');
create trigger audit after insert or update or delete on memberships
    for each row execute function internal.audit_row('org_id', 'user_id');
create trigger audit after insert or update or delete on invitations
    for each row execute function internal.audit_row('org_id', 'id', 'token_hash');
create trigger audit after insert or update or delete on api_keys
    for each row execute function internal.audit_row('org_id', 'id', 'secret_hash', 'last_used_at');
create trigger audit after insert or update or delete on workspaces
    for each row execute function internal.audit_row('org_id', 'id');
create trigger audit after insert or update or delete on ticket_counters
    for each row execute function internal.audit_row('org_id', 'org_id');
create trigger audit after insert or update or delete on tickets
    for each row execute function internal.audit_row('org_id', 'id', 'search');
create trigger audit after insert or update or delete on ticket_comments
    for each row execute function internal.audit_row('org_id', 'id');
create trigger audit after insert or update or delete on credit_balances
    for each row execute function internal.audit_row('org_id', 'org_id');
create trigger audit after insert or update or delete on credit_ledger
    for each row execute function internal.audit_row('org_id', 'id');

create trigger lock_org before insert or update or delete on organizations
    for each statement execute function internal.lock_current_org();
create trigger lock_org before insert or update or delete on memberships
    for each statement execute function internal.lock_current_org();
create trigger lock_org before insert or update or delete on invitations
    for each statement execute function internal.lock_current_org();
create trigger lock_org before insert or update or delete on api_keys
    for each statement execute function internal.lock_current_org();
create trigger lock_org before insert or update or delete on workspaces
    for each statement execute function internal.lock_current_org();
create trigger lock_org before insert or update or delete on ticket_counters
    for each statement execute function internal.lock_current_org();
create trigger lock_org before insert or update or delete on tickets
    for each statement execute function internal.lock_current_org();
create trigger lock_org before insert or update or delete on ticket_comments
    for each statement execute function internal.lock_current_org();
create trigger lock_org before insert or update or delete on credit_balances
    for each statement execute function internal.lock_current_org();
create trigger lock_org before insert or update or delete on credit_ledger
    for each statement execute function internal.lock_current_org();

create trigger audit_log_append_only before update or delete on audit_log
    for each row execute function internal.reject_change();
create trigger audit_log_no_truncate before truncate on audit_log
    for each statement execute function internal.reject_change();
create trigger audit_heads_no_delete before delete on audit_heads
    for each row execute function internal.reject_change();
create trigger audit_heads_no_truncate before truncate on audit_heads
    for each statement execute function internal.reject_change();

-- ---------------------------------------------------------------------------------------------------
-- Row level security: the organization's owners and admins read its trail; nobody writes it directly.
alter table audit_log enable row level security;
alter table audit_log force row level security;
create policy tenant_isolation on audit_log
    using (org_id = (select app.current_org_id()))
    with check (org_id = (select app.current_org_id()));
create policy audit_log_admins_only on audit_log as restrictive for select
    using ((select app.current_app_role()) in ('owner', 'admin'));

alter table audit_heads enable row level security;
alter table audit_heads force row level security;
create policy tenant_isolation on audit_heads
    using (org_id = (select app.current_org_id()))
    with check (org_id = (select app.current_org_id()));
create policy audit_heads_admins_only on audit_heads as restrictive for select
    using ((select app.current_app_role()) in ('owner', 'admin'));

-- ---------------------------------------------------------------------------------------------------
-- accept_invitation writes into an organization that is not the transaction's own: it takes that
-- organization's write lock before any row lock, like every other writer (same behaviour as V1's).
create or replace function auth_private.accept_invitation(p_token_hash bytea)
    returns table (org_id uuid, role text, outcome text)
    language plpgsql
    security definer
    set search_path = pg_catalog, pg_temp
    as $$
declare
    v_inv public.invitations%rowtype;
    v_existing text;
    v_prev_org text;
    v_prev_role text;
    v_outcome text;
    p_user_id uuid := app.current_user_id();
begin
    if p_user_id is null then
        return query select null::uuid, null::text, 'invalid'::text;
        return;
    end if;
    select * into v_inv from public.invitations i
     where i.token_hash = p_token_hash and i.accepted_at is null;
    if not found then
        return query select null::uuid, null::text, 'invalid'::text;
        return;
    end if;
    perform app.lock_org_for_writes(v_inv.org_id);
    -- Write as the invited organization, with no role: the statement triggers then lock only that
    -- organization (never the one the caller has selected, which could deadlock with a twin accepting
    -- the other way round), and the audit trail records the user without a role. Restored below.
    v_prev_org := current_setting('app.org_id', true);
    v_prev_role := current_setting('app.role', true);
    perform set_config('app.org_id', v_inv.org_id::text, true), set_config('app.role', '', true);
    -- Re-read under the lock: a concurrent acceptance or revocation may have won.
    select * into v_inv from public.invitations i
     where i.org_id = v_inv.org_id and i.id = v_inv.id and i.accepted_at is null
     for update;
    if not found then
        v_outcome := 'invalid';
    elsif v_inv.expires_at <= now() then
        v_outcome := 'expired';
    else
        update public.invitations i set accepted_at = now(), accepted_by = p_user_id
         where i.org_id = v_inv.org_id and i.id = v_inv.id;
        select m.role into v_existing from public.memberships m
         where m.org_id = v_inv.org_id and m.user_id = p_user_id;
        if v_existing is not null then
            v_outcome := 'already_member';
        else
            insert into public.memberships (org_id, user_id, role)
            values (v_inv.org_id, p_user_id, v_inv.role);
            v_outcome := 'accepted';
        end if;
    end if;
    perform set_config('app.org_id', coalesce(v_prev_org, ''), true),
            set_config('app.role', coalesce(v_prev_role, ''), true);
    return query select
        case when v_outcome = 'invalid' then null else v_inv.org_id end,
        case v_outcome when 'invalid' then null when 'already_member' then v_existing else v_inv.role end,
        v_outcome;
end
$$;

grant select on audit_log to deskgraph_api;
grant select on audit_heads to deskgraph_api;
