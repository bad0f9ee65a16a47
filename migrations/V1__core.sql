-- deskgraph core: tenancy helpers, identity, workspaces, tickets, comments.
--
-- Tenancy rules (DESIGN §2): every tenant table has `org_id uuid not null` leading its primary key,
-- row level security ENABLED and FORCED, and a `tenant_isolation` policy comparing org_id with the
-- transaction-scoped setting `app.org_id`. Role checks that guard memberships, invitations and API keys
-- are repeated here as RESTRICTIVE policies on `app.role`, so a resolver bug cannot skip them.

-- ---------------------------------------------------------------------------------------------------
-- Roles. `deskgraph_api` is the NOLOGIN group role that holds the runtime privileges; `deskgraph migrate`
-- creates the LOGIN role the server uses (DESKGRAPH_APP_ROLE, default deskgraph_app) and grants it this
-- group. Roles are cluster-wide, so creation tolerates a concurrent or earlier creator.
do $$
begin
    create role deskgraph_api nologin nosuperuser nobypassrls;
exception
    when duplicate_object or unique_violation then null;
end
$$;

-- ---------------------------------------------------------------------------------------------------
-- Tenant context. Settings are always set with set_config(..., true): transaction-scoped.
create schema app;

create function app.current_org_id() returns uuid
    language sql stable parallel safe
    as $$ select nullif(current_setting('app.org_id', true), '')::uuid $$;

create function app.current_user_id() returns uuid
    language sql stable parallel safe
    as $$ select nullif(current_setting('app.user_id', true), '')::uuid $$;

create function app.current_api_key_id() returns uuid
    language sql stable parallel safe
    as $$ select nullif(current_setting('app.api_key_id', true), '')::uuid $$;

-- `current_role` is an SQL keyword, hence the longer name.
create function app.current_app_role() returns text
    language sql stable parallel safe
    as $$ select nullif(current_setting('app.role', true), '') $$;

create function app.touch_updated_at() returns trigger
    language plpgsql
    as $$
begin
    -- clock_timestamp(): several changes in one transaction keep their order.
    new.updated_at := clock_timestamp();
    return new;
end
$$;

-- ---------------------------------------------------------------------------------------------------
-- Identity
create table organizations (
    id uuid primary key,
    slug text not null,
    name text not null,
    plan text not null default 'free',
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint organizations_slug_key unique (slug),
    constraint organizations_slug_format check (slug ~ '^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$'),
    constraint organizations_name_length check (char_length(name) between 1 and 100)
);

create table users (
    id uuid primary key default gen_random_uuid(),
    subject text not null,
    email text,
    name text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint users_subject_key unique (subject),
    constraint users_subject_length check (char_length(subject) between 1 and 255)
);

create table memberships (
    org_id uuid not null references organizations (id) on delete cascade,
    user_id uuid not null references users (id) on delete cascade,
    role text not null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    primary key (org_id, user_id),
    constraint memberships_role_check check (role in ('owner', 'admin', 'agent', 'viewer'))
);
create index memberships_user_idx on memberships (user_id);

create table invitations (
    org_id uuid not null references organizations (id) on delete cascade,
    id uuid not null default gen_random_uuid(),
    email text not null,
    role text not null,
    token_hash bytea not null,
    invited_by uuid references users (id) on delete set null,
    expires_at timestamptz not null,
    accepted_at timestamptz,
    accepted_by uuid references users (id) on delete set null,
    created_at timestamptz not null default now(),
    primary key (org_id, id),
    constraint invitations_token_hash_key unique (token_hash),
    constraint invitations_role_check check (role in ('owner', 'admin', 'agent', 'viewer'))
);

create table api_keys (
    org_id uuid not null references organizations (id) on delete cascade,
    id uuid not null default gen_random_uuid(),
    name text not null,
    role text not null,
    prefix text not null,
    secret_hash bytea not null,
    created_by uuid references users (id) on delete set null,
    created_at timestamptz not null default now(),
    last_used_at timestamptz,
    revoked_at timestamptz,
    primary key (org_id, id),
    constraint api_keys_secret_hash_key unique (secret_hash),
    constraint api_keys_name_length check (char_length(name) between 1 and 100),
    -- Keys never administer: member, invitation and key changes need a person (DESIGN §4), so a removed
    -- admin cannot keep their rights through a key they made.
    constraint api_keys_role_check check (role in ('agent', 'viewer', 'analyst'))
);

-- ---------------------------------------------------------------------------------------------------
-- Support desk
create table workspaces (
    org_id uuid not null references organizations (id) on delete cascade,
    id uuid not null default gen_random_uuid(),
    name text not null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    primary key (org_id, id),
    constraint workspaces_org_name_key unique (org_id, name),
    constraint workspaces_name_length check (char_length(name) between 1 and 100)
);

-- Per-organization ticket numbers (#1, #2, …), assigned by trigger.
create table ticket_counters (
    org_id uuid primary key references organizations (id) on delete cascade,
    last_number bigint not null
);

create table tickets (
    org_id uuid not null references organizations (id) on delete cascade,
    id uuid not null default gen_random_uuid(),
    number bigint not null,
    workspace_id uuid not null,
    title text not null,
    description text not null default '',
    status text not null default 'open',
    priority text not null default 'medium',
    requester_email text,
    assignee_id uuid,
    created_by uuid references users (id) on delete set null,
    -- clock_timestamp(), not now(): rows created by one transaction keep the order they were made in.
    created_at timestamptz not null default clock_timestamp(),
    updated_at timestamptz not null default now(),
    resolved_at timestamptz,
    search tsvector generated always as (
        setweight(to_tsvector('english', title), 'A') || setweight(to_tsvector('english', description), 'B')
    ) stored,
    primary key (org_id, id),
    constraint tickets_org_number_key unique (org_id, number),
    -- Composite keys: a ticket's workspace and assignee are always of the ticket's own organization.
    constraint tickets_workspace_fkey foreign key (org_id, workspace_id) references workspaces (org_id, id),
    constraint tickets_assignee_fkey foreign key (org_id, assignee_id)
        references memberships (org_id, user_id) on delete set null (assignee_id),
    constraint tickets_title_length check (char_length(title) between 1 and 200),
    constraint tickets_description_length check (char_length(description) <= 20000),
    constraint tickets_status_check check (status in ('open', 'pending', 'resolved', 'closed')),
    constraint tickets_priority_check check (priority in ('low', 'medium', 'high', 'critical')),
    constraint tickets_requester_email_length check (char_length(requester_email) <= 320)
);
create index tickets_created_idx on tickets (org_id, created_at desc, id desc);
create index tickets_updated_idx on tickets (org_id, updated_at desc, id desc);
create index tickets_workspace_idx on tickets (org_id, workspace_id, created_at desc);
create index tickets_assignee_idx on tickets (org_id, assignee_id) where assignee_id is not null;
create index tickets_status_idx on tickets (org_id, status, created_at desc);
create index tickets_search_idx on tickets using gin (search);

create table ticket_comments (
    org_id uuid not null references organizations (id) on delete cascade,
    id uuid not null default gen_random_uuid(),
    ticket_id uuid not null,
    author_id uuid references users (id) on delete set null,
    api_key_id uuid,
    body text not null,
    internal boolean not null default false,
    created_at timestamptz not null default clock_timestamp(),
    primary key (org_id, id),
    constraint ticket_comments_ticket_fkey foreign key (org_id, ticket_id)
        references tickets (org_id, id) on delete cascade,
    constraint ticket_comments_api_key_fkey foreign key (org_id, api_key_id) references api_keys (org_id, id),
    constraint ticket_comments_body_length check (char_length(body) between 1 and 20000)
);
create index ticket_comments_ticket_idx on ticket_comments (org_id, ticket_id, created_at, id);

-- ---------------------------------------------------------------------------------------------------
-- Triggers
create trigger organizations_touch before update on organizations
    for each row execute function app.touch_updated_at();
create trigger users_touch before update on users
    for each row execute function app.touch_updated_at();
create trigger memberships_touch before update on memberships
    for each row execute function app.touch_updated_at();
create trigger workspaces_touch before update on workspaces
    for each row execute function app.touch_updated_at();

create function app.tickets_before_write() returns trigger
    language plpgsql
    as $$
begin
    if tg_op = 'INSERT' then
        insert into ticket_counters as c (org_id, last_number) values (new.org_id, 1)
        on conflict (org_id) do update set last_number = c.last_number + 1
        returning c.last_number into new.number;
        new.updated_at := new.created_at;
    else
        new.updated_at := clock_timestamp();
        -- org_id and number are identity; moving a ticket between organizations is never allowed.
        if new.org_id <> old.org_id or new.number <> old.number then
            raise exception 'ticket identity is immutable' using errcode = 'check_violation',
                constraint = 'tickets_identity_immutable';
        end if;
    end if;
    if new.status in ('resolved', 'closed') then
        if tg_op = 'INSERT' or old.status not in ('resolved', 'closed') then
            new.resolved_at := clock_timestamp();
        end if;
    else
        new.resolved_at := null;
    end if;
    return new;
end
$$;
create trigger tickets_before_write before insert or update on tickets
    for each row execute function app.tickets_before_write();

-- ---------------------------------------------------------------------------------------------------
-- Row level security
alter table organizations enable row level security;
alter table organizations force row level security;
-- The current organization, and every organization the current user belongs to (for the org picker).
create policy organizations_read on organizations for select using (
    id = (select app.current_org_id())
    or id in (select m.org_id from memberships m where m.user_id = (select app.current_user_id()))
);
create policy organizations_create on organizations for insert
    with check (id = (select app.current_org_id()) and (select app.current_app_role()) = 'owner');
create policy organizations_update on organizations for update
    using (id = (select app.current_org_id()) and (select app.current_app_role()) = 'owner')
    with check (id = (select app.current_org_id()));

alter table users enable row level security;
alter table users force row level security;
-- A user sees themselves and the members of the current organization. Writes go through
-- auth_private.authenticate_user only.
create policy users_read on users for select using (
    id = (select app.current_user_id())
    or id in (select m.user_id from memberships m where m.org_id = (select app.current_org_id()))
);

alter table memberships enable row level security;
alter table memberships force row level security;
create policy tenant_isolation on memberships
    using (org_id = (select app.current_org_id()))
    with check (org_id = (select app.current_org_id()));
create policy memberships_own_read on memberships for select
    using (user_id = (select app.current_user_id()));
-- Only owners and admins change memberships, and only owners touch owner memberships.
create policy memberships_insert_by_admins on memberships as restrictive for insert with check (
    (select app.current_app_role()) = 'owner'
    or ((select app.current_app_role()) = 'admin' and role <> 'owner')
);
create policy memberships_update_by_admins on memberships as restrictive for update using (
    (select app.current_app_role()) = 'owner'
    or ((select app.current_app_role()) = 'admin' and role <> 'owner')
) with check (
    (select app.current_app_role()) = 'owner'
    or ((select app.current_app_role()) = 'admin' and role <> 'owner')
);
create policy memberships_delete_by_admins on memberships as restrictive for delete using (
    (select app.current_app_role()) = 'owner'
    or ((select app.current_app_role()) = 'admin' and role <> 'owner')
);

alter table invitations enable row level security;
alter table invitations force row level security;
create policy tenant_isolation on invitations
    using (org_id = (select app.current_org_id()))
    with check (org_id = (select app.current_org_id()));
create policy invitations_admins_only on invitations as restrictive
    using ((select app.current_app_role()) in ('owner', 'admin'))
    with check (
        (select app.current_app_role()) = 'owner'
        or ((select app.current_app_role()) = 'admin' and role <> 'owner')
    );

alter table api_keys enable row level security;
alter table api_keys force row level security;
create policy tenant_isolation on api_keys
    using (org_id = (select app.current_org_id()))
    with check (org_id = (select app.current_org_id()));
create policy api_keys_admins_only on api_keys as restrictive
    using ((select app.current_app_role()) in ('owner', 'admin'))
    with check ((select app.current_app_role()) in ('owner', 'admin'));

alter table workspaces enable row level security;
alter table workspaces force row level security;
create policy tenant_isolation on workspaces
    using (org_id = (select app.current_org_id()))
    with check (org_id = (select app.current_org_id()));
create policy workspaces_insert_by_admins on workspaces as restrictive for insert
    with check ((select app.current_app_role()) in ('owner', 'admin'));
create policy workspaces_update_by_admins on workspaces as restrictive for update
    using ((select app.current_app_role()) in ('owner', 'admin'));
create policy workspaces_delete_by_admins on workspaces as restrictive for delete
    using ((select app.current_app_role()) in ('owner', 'admin'));

alter table ticket_counters enable row level security;
alter table ticket_counters force row level security;
create policy tenant_isolation on ticket_counters
    using (org_id = (select app.current_org_id()))
    with check (org_id = (select app.current_org_id()));

alter table tickets enable row level security;
alter table tickets force row level security;
create policy tenant_isolation on tickets
    using (org_id = (select app.current_org_id()))
    with check (org_id = (select app.current_org_id()));
create policy tickets_insert_by_agents on tickets as restrictive for insert
    with check ((select app.current_app_role()) in ('owner', 'admin', 'agent'));
create policy tickets_update_by_agents on tickets as restrictive for update
    using ((select app.current_app_role()) in ('owner', 'admin', 'agent'));
create policy tickets_delete_by_admins on tickets as restrictive for delete
    using ((select app.current_app_role()) in ('owner', 'admin'));

alter table ticket_comments enable row level security;
alter table ticket_comments force row level security;
create policy tenant_isolation on ticket_comments
    using (org_id = (select app.current_org_id()))
    with check (org_id = (select app.current_org_id()));
create policy ticket_comments_insert_by_agents on ticket_comments as restrictive for insert
    with check ((select app.current_app_role()) in ('owner', 'admin', 'agent'));
create policy ticket_comments_update_by_agents on ticket_comments as restrictive for update
    using ((select app.current_app_role()) in ('owner', 'admin', 'agent'));
create policy ticket_comments_delete_by_admins on ticket_comments as restrictive for delete
    using ((select app.current_app_role()) in ('owner', 'admin'));

-- ---------------------------------------------------------------------------------------------------
-- SECURITY DEFINER functions, only for the steps where no tenant is known yet. They live in a schema
-- of their own, run with a fixed search_path, and are executable by the runtime role only.
-- They run as the migration owner, which must be a superuser or have BYPASSRLS (`deskgraph migrate`
-- checks this), because they read across organizations by design.
create schema auth_private;
revoke all on schema auth_private from public;
-- Functions are executable by PUBLIC by default; here each one must be granted explicitly, so a
-- function added later is not callable by the API until a migration says so.
alter default privileges in schema auth_private revoke execute on functions from public;

-- Resolves (and on first sight creates) the user behind an identity-provider subject, and their role in
-- the requested organization (null when they are not a member or the organization does not exist).
create function auth_private.authenticate_user(p_subject text, p_email text, p_name text, p_org_id uuid)
    returns table (user_id uuid, member_role text)
    language plpgsql
    security definer
    set search_path = pg_catalog, pg_temp
    as $$
declare
    v_user uuid;
begin
    select u.id into v_user from public.users u where u.subject = p_subject;
    if v_user is null then
        insert into public.users as u (subject, email, name) values (p_subject, p_email, p_name)
        on conflict (subject) do update set subject = excluded.subject
        returning u.id into v_user;
    end if;
    -- Keep the profile in step with the identity provider, without a write when nothing changed.
    update public.users u
       set email = coalesce(p_email, u.email), name = coalesce(p_name, u.name)
     where u.id = v_user
       and (u.email is distinct from coalesce(p_email, u.email) or u.name is distinct from coalesce(p_name, u.name));
    return query
        select v_user, (select m.role from public.memberships m where m.org_id = p_org_id and m.user_id = v_user);
end
$$;

-- Resolves an API key by the sha256 of its secret. Revoked keys resolve to nothing. last_used_at is
-- refreshed at most once a minute so that busy keys do not write on every request.
create function auth_private.authenticate_api_key(p_secret_hash bytea)
    returns table (api_key_id uuid, org_id uuid, role text)
    language sql
    security definer
    set search_path = pg_catalog, pg_temp
    as $$
    with k as (
        select k.id, k.org_id, k.role, k.last_used_at
          from public.api_keys k
         where k.secret_hash = p_secret_hash and k.revoked_at is null
    ), touched as (
        update public.api_keys a set last_used_at = now()
          from k
         where a.org_id = k.org_id and a.id = k.id
           and (k.last_used_at is null or k.last_used_at < now() - interval '1 minute')
    )
    select k.id, k.org_id, k.role from k
$$;

-- Accepts an invitation by the sha256 of its one-time token for the current user (app.user_id; the
-- token is the capability, as in a team invitation link). Returns the organization and role, and an
-- outcome: 'accepted', 'already_member', 'invalid' (unknown or used, or no user) or 'expired'.
create function auth_private.accept_invitation(p_token_hash bytea)
    returns table (org_id uuid, role text, outcome text)
    language plpgsql
    security definer
    set search_path = pg_catalog, pg_temp
    as $$
declare
    v_inv public.invitations%rowtype;
    v_existing text;
    p_user_id uuid := app.current_user_id();
begin
    if p_user_id is null then
        return query select null::uuid, null::text, 'invalid'::text;
        return;
    end if;
    select * into v_inv from public.invitations i
     where i.token_hash = p_token_hash and i.accepted_at is null
     for update;
    if not found then
        return query select null::uuid, null::text, 'invalid'::text;
        return;
    end if;
    if v_inv.expires_at <= now() then
        return query select v_inv.org_id, v_inv.role, 'expired'::text;
        return;
    end if;
    update public.invitations i set accepted_at = now(), accepted_by = p_user_id
     where i.org_id = v_inv.org_id and i.id = v_inv.id;
    select m.role into v_existing from public.memberships m
     where m.org_id = v_inv.org_id and m.user_id = p_user_id;
    if v_existing is not null then
        return query select v_inv.org_id, v_existing, 'already_member'::text;
        return;
    end if;
    insert into public.memberships (org_id, user_id, role) values (v_inv.org_id, p_user_id, v_inv.role);
    return query select v_inv.org_id, v_inv.role, 'accepted'::text;
end
$$;

-- Whether the current organization may add a user directly by id: the user exists and either belongs to
-- no organization yet (a newcomer who shared their id), or already shares an organization with the
-- current user. Anyone else must be invited, so nobody is pulled into an organization, or has their
-- profile shown to it, without a choice.
create function auth_private.can_add_member(p_user_id uuid)
    returns boolean
    language sql
    stable
    security definer
    set search_path = pg_catalog, pg_temp
    as $$
    select exists (select 1 from public.users u where u.id = p_user_id)
       and (
            not exists (select 1 from public.memberships m where m.user_id = p_user_id)
            or exists (
                select 1 from public.memberships theirs
                  join public.memberships mine on mine.org_id = theirs.org_id
                 where theirs.user_id = p_user_id and mine.user_id = app.current_user_id()
            )
       )
$$;

revoke all on all functions in schema auth_private from public;

-- ---------------------------------------------------------------------------------------------------
-- Runtime privileges: the minimum the API needs, nothing on the auth_private internals.
grant usage on schema app to deskgraph_api;
grant usage on schema auth_private to deskgraph_api;
grant execute on function auth_private.authenticate_user(text, text, text, uuid) to deskgraph_api;
grant execute on function auth_private.authenticate_api_key(bytea) to deskgraph_api;
grant execute on function auth_private.accept_invitation(bytea) to deskgraph_api;
grant execute on function auth_private.can_add_member(uuid) to deskgraph_api;

grant select, insert, update on organizations to deskgraph_api;
grant select on users to deskgraph_api;
grant select, insert, update, delete on memberships to deskgraph_api;
grant select (org_id, id, email, role, invited_by, expires_at, accepted_at, accepted_by, created_at),
      insert, delete on invitations to deskgraph_api;
-- The secret hash is write-only for the runtime role.
grant select (org_id, id, name, role, prefix, created_by, created_at, last_used_at, revoked_at),
      insert, update (name, revoked_at) on api_keys to deskgraph_api;
grant select, insert, update, delete on workspaces to deskgraph_api;
grant select, insert, update on ticket_counters to deskgraph_api;
grant select, insert, update, delete on tickets to deskgraph_api;
grant select, insert, update, delete on ticket_comments to deskgraph_api;
