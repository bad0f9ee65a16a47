-- deskgraph: plans, seat limits, and the credits ledger that meters AI work.
--
-- Money rules:
-- * `credit_ledger` is the only way credits move. It is append-only: no UPDATE, DELETE or TRUNCATE for
--   anyone (a trigger refuses them even to the table's owner), and the runtime role may only INSERT.
-- * `credit_balances` is derived: the runtime role can only read it. A BEFORE INSERT trigger on the
--   ledger locks the organization's balance row, skips an entry whose idempotency key was already used
--   (the first one stands), checks the entry, applies it and records the balance after it — all under
--   one row lock per organization, so concurrent writers never read-then-write a stale balance.
-- * Balances never go negative: the trigger refuses such an entry, and check constraints back it up.
-- * Who may write which kind of entry is a RESTRICTIVE policy on `app.role`, not only an API check.

-- ---------------------------------------------------------------------------------------------------
-- Plumbing
-- `internal` holds functions only the database itself calls (trigger functions, and helpers of SECURITY
-- DEFINER triggers). The runtime role has no USAGE on it: it cannot name, let alone call, them.
create schema internal;
revoke all on schema internal from public;
alter default privileges in schema internal revoke execute on functions from public;

create function app.current_request_id() returns text
    language sql stable parallel safe
    as $$ select nullif(current_setting('app.request_id', true), '') $$;

-- The organization's write lock, held until the transaction ends. Every write statement on a tenant
-- table takes it for the current organization before touching any row (a BEFORE ... FOR EACH STATEMENT
-- trigger, internal.lock_current_org, added with the audit triggers in V3), and so does every path that
-- locks rows outside a write statement or writes into an organization other than the current one.
-- Taking it before any row lock gives all writers of an organization one lock order, so the
-- per-organization locks below (balance, seat count, audit chain, ticket counter) cannot deadlock.
-- An advisory lock needs no privilege; a 64-bit hash makes collisions between organizations negligible
-- (and harmless: two organizations would only share a queue).
create function app.lock_org_for_writes(p_org_id uuid) returns void
    language sql volatile
    as $$ select pg_advisory_xact_lock(hashtextextended('deskgraph.org:' || p_org_id::text, 0))
          where p_org_id is not null $$;

-- Refuses UPDATE, DELETE and TRUNCATE on append-only tables, whoever asks.
create function internal.reject_change() returns trigger
    language plpgsql
    as $$
begin
    raise exception '% is append-only: % is not allowed', tg_table_name, tg_op
        using errcode = 'insufficient_privilege';
end
$$;

-- ---------------------------------------------------------------------------------------------------
-- Plans (global, read-only to the runtime role)
create table plans (
    id text primary key,
    name text not null,
    -- Credits granted at the start of every month (an upgrade mid-month tops up to the new amount).
    monthly_credits bigint not null,
    -- Members plus pending invitations; null means unlimited.
    seat_limit integer,
    position integer not null,
    constraint plans_monthly_credits_check check (monthly_credits >= 0),
    constraint plans_seat_limit_check check (seat_limit is null or seat_limit >= 1)
);

insert into plans (id, name, monthly_credits, seat_limit, position) values
    ('free', 'Free', 100, 5, 1),
    ('pro', 'Pro', 2000, 25, 2),
    ('enterprise', 'Enterprise', 20000, null, 3);

alter table organizations
    add constraint organizations_plan_fkey foreign key (plan) references plans (id);

-- ---------------------------------------------------------------------------------------------------
-- Seat limits. Members and pending (unexpired, unaccepted) invitations take a seat. The check locks the
-- organization row (FOR NO KEY UPDATE: it does not block foreign-key checks of other inserts), so
-- concurrent invitations and additions, and plan changes, are serialised per organization.
-- The triggers are SECURITY DEFINER so the count covers rows the caller cannot see (trigger functions
-- cannot be called directly).

-- Raises `plan_seat_limit` unless the seats in use plus `p_adding` fit plan `p_plan`.
create function internal.check_seats(p_org_id uuid, p_plan text, p_adding integer) returns void
    language plpgsql
    set search_path = pg_catalog, pg_temp
    as $$
declare
    v_limit integer;
    v_name text;
begin
    select p.seat_limit, p.name into v_limit, v_name from public.plans p where p.id = p_plan;
    if v_limit is not null
       and (select count(*) from public.memberships m where m.org_id = p_org_id)
         + (select count(*) from public.invitations i
             where i.org_id = p_org_id and i.accepted_at is null and i.expires_at > now())
         + p_adding > v_limit then
        raise exception 'the % plan allows % seats', v_name, v_limit
            using errcode = 'check_violation', constraint = 'plan_seat_limit';
    end if;
end
$$;
revoke all on function internal.check_seats(uuid, text, integer) from public;

create function internal.enforce_seat_limit() returns trigger
    language plpgsql
    security definer
    set search_path = pg_catalog, pg_temp
    as $$
declare
    v_plan text;
begin
    perform app.lock_org_for_writes(new.org_id);
    -- Lock the organization alone, then read its plan: a locking join re-checked after a concurrent plan
    -- change would pair the new plan id with the old plans row and find nothing.
    select o.plan into v_plan from public.organizations o where o.id = new.org_id for no key update;
    if not found then
        raise exception 'organization % does not exist', new.org_id
            using errcode = 'foreign_key_violation';
    end if;
    perform internal.check_seats(new.org_id, v_plan, 1);
    return new;
end
$$;
revoke all on function internal.enforce_seat_limit() from public;

create trigger memberships_seat_limit before insert on memberships
    for each row execute function internal.enforce_seat_limit();
create trigger invitations_seat_limit before insert on invitations
    for each row execute function internal.enforce_seat_limit();

-- A plan whose seat limit is below the seats in use cannot be chosen.
create function internal.organizations_plan_change() returns trigger
    language plpgsql
    security definer
    set search_path = pg_catalog, pg_temp
    as $$
begin
    perform internal.check_seats(new.id, new.plan, 0);
    return new;
end
$$;
revoke all on function internal.organizations_plan_change() from public;

create trigger organizations_plan_change before update of plan on organizations
    for each row when (new.plan is distinct from old.plan)
    execute function internal.organizations_plan_change();

-- ---------------------------------------------------------------------------------------------------
-- Credits
create table credit_balances (
    org_id uuid primary key references organizations (id),
    -- Credits available to spend.
    balance bigint not null default 0,
    -- Credits reserved by open holds.
    held bigint not null default 0,
    updated_at timestamptz not null default now(),
    constraint credit_balances_balance_check check (balance >= 0),
    constraint credit_balances_held_check check (held >= 0)
);

create table credit_ledger (
    org_id uuid not null references organizations (id),
    id uuid not null default gen_random_uuid(),
    kind text not null,
    -- Signed change to the available balance.
    amount bigint not null,
    -- Signed change to the held credits (HOLD moves credits from balance to held; CAPTURE spends held
    -- credits; RELEASE returns them to the balance).
    held_change bigint not null default 0,
    -- Set by the trigger from the locked balance row; whatever the writer sends is overwritten.
    balance_after bigint not null,
    held_after bigint not null,
    -- CAPTURE and RELEASE: the HOLD entry they settle.
    hold_id uuid,
    -- Set by the trigger from the transaction's context.
    actor_user_id uuid,
    actor_api_key_id uuid,
    actor_role text,
    request_id text,
    reference text,
    note text,
    idempotency_key text not null,
    created_at timestamptz not null default clock_timestamp(),
    primary key (org_id, id),
    constraint credit_ledger_idempotency_key unique (org_id, idempotency_key),
    constraint credit_ledger_hold_fkey foreign key (org_id, hold_id) references credit_ledger (org_id, id),
    constraint credit_ledger_kind_check check (
        kind in ('GRANT', 'PURCHASE', 'ALLOWANCE', 'HOLD', 'CAPTURE', 'RELEASE', 'REFUND', 'ADJUSTMENT')
    ),
    -- The shape of each kind: what it may change, and by which sign.
    constraint credit_ledger_shape_check check (
        case kind
            when 'GRANT' then amount > 0 and held_change = 0 and hold_id is null
            when 'PURCHASE' then amount > 0 and held_change = 0 and hold_id is null
            when 'ALLOWANCE' then amount > 0 and held_change = 0 and hold_id is null
            when 'REFUND' then amount > 0 and held_change = 0 and hold_id is null
            when 'ADJUSTMENT' then amount <> 0 and held_change = 0 and hold_id is null
            when 'HOLD' then amount < 0 and held_change = -amount and hold_id is null
            when 'CAPTURE' then amount = 0 and held_change < 0 and hold_id is not null
            when 'RELEASE' then amount > 0 and held_change = -amount and hold_id is not null
        end
    ),
    constraint credit_ledger_balance_after_check check (balance_after >= 0 and held_after >= 0),
    constraint credit_ledger_key_length check (char_length(idempotency_key) between 1 and 200),
    constraint credit_ledger_note_length check (char_length(note) <= 500),
    constraint credit_ledger_reference_length check (char_length(reference) <= 200)
);
create index credit_ledger_created_idx on credit_ledger (org_id, created_at desc, id desc);
create index credit_ledger_hold_idx on credit_ledger (org_id, hold_id) where hold_id is not null;
create index credit_ledger_allowance_idx on credit_ledger (org_id, idempotency_key) where kind = 'ALLOWANCE';

-- The one door through which balances change. SECURITY DEFINER because the runtime role has no write
-- privilege on credit_balances (a trigger function cannot be called directly).
create function internal.credit_ledger_apply() returns trigger
    language plpgsql
    security definer
    set search_path = pg_catalog, pg_temp
    as $$
declare
    v_bal public.credit_balances%rowtype;
    v_month text;
    v_plan public.plans%rowtype;
    v_hold bigint;
    v_settled bigint;
begin
    -- RLS checks the row after BEFORE triggers; refuse a foreign organization before locking anything.
    if new.org_id is distinct from app.current_org_id() then
        raise exception 'credit entries are written for the current organization only'
            using errcode = 'insufficient_privilege';
    end if;
    -- Who, when and for which request come from the transaction, never from the writer.
    new.actor_user_id := app.current_user_id();
    new.actor_api_key_id := app.current_api_key_id();
    new.actor_role := app.current_app_role();
    new.request_id := app.current_request_id();
    new.created_at := clock_timestamp();

    -- The organization's write lock is held already: the entry is for the current organization, whose
    -- lock the ledger's statement trigger took.
    insert into public.credit_balances (org_id) values (new.org_id) on conflict (org_id) do nothing;
    -- Every ledger write of an organization serialises here.
    select * into strict v_bal from public.credit_balances b where b.org_id = new.org_id for update;

    -- The monthly allowance: amount and key are derived here, so any role may ask for it and nobody can
    -- mint credits through it. Once per organization, month and plan; an upgrade tops up the month to
    -- the new plan's allowance.
    if new.kind = 'ALLOWANCE' then
        select p.* into strict v_plan
          from public.organizations o join public.plans p on p.id = o.plan
         where o.id = new.org_id;
        v_month := to_char(now() at time zone 'UTC', 'YYYY-MM');
        new.idempotency_key := 'allowance:' || v_month || ':' || v_plan.id;
        new.amount := v_plan.monthly_credits - coalesce((
            select sum(l.amount) from public.credit_ledger l
             where l.org_id = new.org_id and l.kind = 'ALLOWANCE'
               and l.idempotency_key like 'allowance:' || v_month || ':%'), 0);
        new.held_change := 0;
        new.note := format('%s plan allowance for %s', v_plan.name, v_month);
        if new.amount <= 0 then
            return null; -- nothing is due this month
        end if;
    end if;

    -- Idempotency: the first entry with a key stands; a repeat is skipped (the writer reads the first
    -- one back). Checked under the lock, so a concurrent twin that committed first is seen here.
    if exists (select 1 from public.credit_ledger l
                where l.org_id = new.org_id and l.idempotency_key = new.idempotency_key) then
        return null;
    end if;

    -- A settlement never exceeds what its hold still holds.
    if new.kind in ('CAPTURE', 'RELEASE') then
        select l.held_change into v_hold from public.credit_ledger l
         where l.org_id = new.org_id and l.id = new.hold_id and l.kind = 'HOLD';
        if v_hold is null then
            raise exception 'hold % does not exist', new.hold_id
                using errcode = 'foreign_key_violation', constraint = 'credit_ledger_hold_fkey';
        end if;
        select coalesce(sum(-l.held_change), 0) into v_settled from public.credit_ledger l
         where l.org_id = new.org_id and l.hold_id = new.hold_id;
        if v_settled - new.held_change > v_hold then
            raise exception 'hold % has only % credits left to settle', new.hold_id, v_hold - v_settled
                using errcode = 'check_violation', constraint = 'credit_ledger_hold_settled';
        end if;
    end if;

    new.balance_after := v_bal.balance + new.amount;
    new.held_after := v_bal.held + new.held_change;
    if new.balance_after < 0 then
        raise exception 'insufficient credits: balance %, entry %', v_bal.balance, new.amount
            using errcode = 'check_violation', constraint = 'credit_balances_balance_check';
    end if;
    if new.held_after < 0 then
        raise exception 'held credits would go negative'
            using errcode = 'check_violation', constraint = 'credit_balances_held_check';
    end if;
    update public.credit_balances b
       set balance = new.balance_after, held = new.held_after, updated_at = new.created_at
     where b.org_id = new.org_id;
    return new;
end
$$;
revoke all on function internal.credit_ledger_apply() from public;

create trigger credit_ledger_apply before insert on credit_ledger
    for each row execute function internal.credit_ledger_apply();
create trigger credit_ledger_append_only before update or delete on credit_ledger
    for each row execute function internal.reject_change();
create trigger credit_ledger_no_truncate before truncate on credit_ledger
    for each statement execute function internal.reject_change();

-- Every organization has a balance row from the start (existing ones too).
create function internal.organizations_credit_balance() returns trigger
    language plpgsql
    security definer
    set search_path = pg_catalog, pg_temp
    as $$
begin
    insert into public.credit_balances (org_id) values (new.id) on conflict (org_id) do nothing;
    return null;
end
$$;
revoke all on function internal.organizations_credit_balance() from public;

create trigger organizations_credit_balance after insert on organizations
    for each row execute function internal.organizations_credit_balance();

insert into credit_balances (org_id) select id from organizations on conflict (org_id) do nothing;

-- ---------------------------------------------------------------------------------------------------
-- Row level security
alter table credit_balances enable row level security;
alter table credit_balances force row level security;
create policy tenant_isolation on credit_balances
    using (org_id = (select app.current_org_id()))
    with check (org_id = (select app.current_org_id()));

alter table credit_ledger enable row level security;
alter table credit_ledger force row level security;
create policy tenant_isolation on credit_ledger
    using (org_id = (select app.current_org_id()))
    with check (org_id = (select app.current_org_id()));
-- Who may write which kind of entry. Only owners and admins add credits (GRANT, PURCHASE, REFUND,
-- ADJUSTMENT); `system`, the server's own background work (AI jobs), may only place and settle holds,
-- which never create credits; anyone may trigger the allowance, whose amount the database derives.
create policy credit_ledger_insert_by_role on credit_ledger as restrictive for insert with check (
    case
        when kind = 'ALLOWANCE' then (select app.current_app_role()) is not null
        when kind in ('HOLD', 'CAPTURE', 'RELEASE')
            then (select app.current_app_role()) in ('owner', 'admin', 'agent', 'system')
        else (select app.current_app_role()) in ('owner', 'admin')
    end
);

-- ---------------------------------------------------------------------------------------------------
-- Allowance scheduling: organizations still owed allowance this month, in id order after `p_after`.
-- SECURITY DEFINER because no tenant is known yet (like claiming jobs); it returns ids only, and each
-- grant then runs in a transaction of its own organization.
create function auth_private.organizations_due_allowance(p_after uuid, p_limit integer)
    returns table (org_id uuid)
    language sql
    stable
    security definer
    set search_path = pg_catalog, pg_temp
    as $$
    select o.id from public.organizations o
      join public.plans p on p.id = o.plan
     where app.current_app_role() = 'system' -- the server's scheduler only
       and o.id > coalesce(p_after, '00000000-0000-0000-0000-000000000000'::uuid)
       and p.monthly_credits > coalesce((
        select sum(l.amount) from public.credit_ledger l
         where l.org_id = o.id and l.kind = 'ALLOWANCE'
           and l.idempotency_key like 'allowance:' || to_char(now() at time zone 'UTC', 'YYYY-MM') || ':%'), 0)
     order by o.id
     limit greatest(p_limit, 0)
$$;
revoke all on function auth_private.organizations_due_allowance(uuid, integer) from public;

-- ---------------------------------------------------------------------------------------------------
-- Runtime privileges
grant execute on function auth_private.organizations_due_allowance(uuid, integer) to deskgraph_api;
grant select on plans to deskgraph_api;
grant select on credit_balances to deskgraph_api;
grant select, insert on credit_ledger to deskgraph_api;
