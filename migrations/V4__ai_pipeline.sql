-- The AI triage pipeline: a transactional job queue, ticket analyses, and who set a ticket's priority.
--
-- * `jobs` is the queue (modelled on River and Oban). A job is enqueued by a plain INSERT inside the
--   caller's tenant transaction, so a ticket and its analysis job commit together or not at all.
--   Workers claim across organizations through `auth_private.claim_jobs` (FOR UPDATE SKIP LOCKED; no
--   tenant is known yet), then do each job's work in a transaction of the job's organization, where
--   RLS applies, and finish the job in that same transaction with an UPDATE fenced by `attempt`: a
--   worker whose lease expired and whose job was claimed again cannot complete it.
-- * `jobs` is a tenant table (RLS enabled, forced, isolated) but it is queue bookkeeping, not tenant
--   data: it has no audit trigger and no write-lock trigger (src/db/safety.rs lists it). Claims and
--   heartbeats touch many organizations' jobs in one statement; taking those organizations' write
--   locks and audit heads there would order locks across tenants and queue workers behind writers.
--   What a job does (analyses, credit holds and captures, ticket priority) is audited where it happens.

-- ---------------------------------------------------------------------------------------------------
-- Tickets remember who chose their priority: the AI applies its priority only to tickets whose
-- priority no person set. Tickets older than this migration count as set by a person.
alter table tickets add column priority_source text not null default 'human';
alter table tickets alter column priority_source set default 'default';
alter table tickets add constraint tickets_priority_source_check
    check (priority_source in ('default', 'human', 'ai'));

-- The server's own work (app.role = 'system') may update tickets, but only their priority: the AI
-- applies the priority it proposes. Everything else stays with people.
alter policy tickets_update_by_agents on tickets
    using ((select app.current_app_role()) in ('owner', 'admin', 'agent', 'system'));
create function internal.tickets_system_update() returns trigger
    language plpgsql
    set search_path = pg_catalog, pg_temp
    as $$
begin
    if app.current_app_role() = 'system'
       and (to_jsonb(new) - array['priority', 'priority_source', 'updated_at', 'search'])
           is distinct from (to_jsonb(old) - array['priority', 'priority_source', 'updated_at', 'search']) then
        raise exception 'the server''s own work may only change a ticket''s priority'
            using errcode = 'insufficient_privilege';
    end if;
    return new;
end
$$;
revoke all on function internal.tickets_system_update() from public;
-- Named to run after tickets_before_write (triggers fire in name order), which sets updated_at.
create trigger tickets_system_update before update on tickets
    for each row execute function internal.tickets_system_update();

-- ---------------------------------------------------------------------------------------------------
-- The job queue
create table jobs (
    org_id uuid not null references organizations (id),
    id uuid not null default gen_random_uuid(),
    kind text not null,
    args jsonb not null default '{}',
    -- available (waiting for run_at, including retries) -> running -> completed | discarded
    state text not null default 'available',
    -- 1 runs first, 4 last
    priority smallint not null default 2,
    run_at timestamptz not null default now(),
    -- Incremented by every claim: the fencing token of the current run.
    attempt integer not null default 0,
    max_attempts integer not null default 5,
    -- At most one available or running job per (org, kind, unique_key).
    unique_key text,
    locked_by text,
    lease_expires_at timestamptz,
    last_error text,
    errors jsonb not null default '[]',
    created_at timestamptz not null default clock_timestamp(),
    attempted_at timestamptz,
    finished_at timestamptz,
    primary key (org_id, id),
    constraint jobs_state_check check (state in ('available', 'running', 'completed', 'discarded')),
    constraint jobs_kind_length check (char_length(kind) between 1 and 100),
    constraint jobs_priority_check check (priority between 1 and 4),
    constraint jobs_max_attempts_check check (max_attempts between 1 and 100),
    constraint jobs_unique_key_length check (char_length(unique_key) <= 300)
);
create unique index jobs_id_key on jobs (id);
create index jobs_fetch_idx on jobs (priority, run_at, id) where state = 'available';
create index jobs_lease_idx on jobs (lease_expires_at) where state = 'running';
create index jobs_finished_idx on jobs (finished_at) where state in ('completed', 'discarded');
create index jobs_org_idx on jobs (org_id, created_at desc);
create unique index jobs_unique_key on jobs (org_id, kind, unique_key)
    where unique_key is not null and state in ('available', 'running');

alter table jobs enable row level security;
alter table jobs force row level security;
create policy tenant_isolation on jobs
    using (org_id = (select app.current_org_id()))
    with check (org_id = (select app.current_org_id()));
-- People who may create tickets or grant credits enqueue; only the server's own work moves a job on.
create policy jobs_enqueue on jobs as restrictive for insert
    with check ((select app.current_app_role()) in ('owner', 'admin', 'agent', 'system'));
create policy jobs_update on jobs as restrictive for update
    using ((select app.current_app_role()) = 'system');
-- Args and provider errors are for the people who run the desk, not for viewers and analytics keys.
create policy jobs_read on jobs as restrictive for select
    using ((select app.current_app_role()) in ('owner', 'admin', 'agent', 'system'));

-- Wakes listening workers when runnable jobs are inserted (delivered at commit, folded per transaction).
create function internal.jobs_notify() returns trigger
    language plpgsql
    set search_path = pg_catalog, pg_temp
    as $$
begin
    if exists (select 1 from inserted where run_at <= now()) then
        perform pg_notify('deskgraph_jobs', '');
    end if;
    return null;
end
$$;
revoke all on function internal.jobs_notify() from public;
create trigger jobs_notify after insert on jobs referencing new table as inserted
    for each statement execute function internal.jobs_notify();

-- Claims up to p_limit runnable jobs of the given kinds for worker p_worker, leasing them for
-- p_lease_secs. First it puts back jobs whose lease expired (their worker died). It never discards: a
-- job past its attempts is claimed once more, and the worker fails it through its handler, which
-- settles what the job holds (a credit hold). SECURITY DEFINER because no tenant is known yet; only
-- the server's workers (app.role = 'system') get rows. Each job's work then runs in its own tenant.
create function auth_private.claim_jobs(p_worker text, p_kinds text[], p_limit integer, p_lease_secs integer)
    returns table (org_id uuid, id uuid, kind text, args jsonb, attempt integer, max_attempts integer)
    language sql
    volatile
    security definer
    set search_path = pg_catalog, pg_temp
    as $$
    with expired as (
        select j.org_id, j.id from public.jobs j
         where app.current_app_role() = 'system'
           and j.state = 'running' and j.lease_expires_at < now() and j.kind = any(p_kinds)
         for update skip locked
    )
    update public.jobs j
       set state = 'available',
           run_at = now(),
           locked_by = null,
           lease_expires_at = null,
           last_error = 'lease expired: worker ' || coalesce(j.locked_by, '?') || ' stopped responding',
           errors = j.errors || jsonb_build_array(jsonb_build_object(
               'attempt', j.attempt, 'at', now(),
               'error', 'lease expired: worker ' || coalesce(j.locked_by, '?') || ' stopped responding'))
      from expired e
     where j.org_id = e.org_id and j.id = e.id;

    with picked as (
        select j.org_id, j.id from public.jobs j
         where app.current_app_role() = 'system'
           and j.state = 'available' and j.run_at <= now() and j.kind = any(p_kinds)
         order by j.priority, j.run_at, j.id
         limit greatest(p_limit, 0)
         for update skip locked
    )
    update public.jobs j
       set state = 'running',
           attempt = j.attempt + 1,
           locked_by = p_worker,
           attempted_at = now(),
           lease_expires_at = now() + make_interval(secs => p_lease_secs)
      from picked p
     where j.org_id = p.org_id and j.id = p.id
    returning j.org_id, j.id, j.kind, j.args, j.attempt, j.max_attempts
$$;
revoke all on function auth_private.claim_jobs(text, text[], integer, integer) from public;

-- Extends the leases of the jobs p_worker still holds; returns them with their attempt, so the worker
-- learns which ones it lost (rescued by another worker after a stall) and stops working on them.
create function auth_private.extend_job_leases(p_worker text, p_ids uuid[], p_lease_secs integer)
    returns table (id uuid, attempt integer)
    language sql
    volatile
    security definer
    set search_path = pg_catalog, pg_temp
    as $$
    update public.jobs j
       set lease_expires_at = now() + make_interval(secs => p_lease_secs)
     where app.current_app_role() = 'system'
       and j.id = any(p_ids) and j.state = 'running' and j.locked_by = p_worker
    returning j.id, j.attempt
$$;
revoke all on function auth_private.extend_job_leases(text, uuid[], integer) from public;

-- Puts jobs a stopping worker could not finish back in the queue, runnable now (the attempt counts;
-- as in claim_jobs, a job past its attempts is failed by the next worker's handler, not here).
create function auth_private.release_jobs(p_worker text, p_ids uuid[], p_attempts integer[])
    returns integer
    language plpgsql
    volatile
    security definer
    set search_path = pg_catalog, pg_temp
    as $$
declare
    v_count integer;
begin
    if app.current_app_role() is distinct from 'system' then
        return 0;
    end if;
    update public.jobs j
       set state = 'available',
           run_at = now(),
           locked_by = null,
           lease_expires_at = null,
           last_error = 'interrupted: worker ' || p_worker || ' shut down',
           errors = j.errors || jsonb_build_array(jsonb_build_object(
               'attempt', j.attempt, 'at', now(), 'error', 'interrupted: worker ' || p_worker || ' shut down'))
      from unnest(p_ids, p_attempts) as r(id, attempt)
     where j.id = r.id and j.attempt = r.attempt and j.state = 'running' and j.locked_by = p_worker;
    get diagnostics v_count = row_count;
    if v_count > 0 then
        perform pg_notify('deskgraph_jobs', '');
    end if;
    return v_count;
end
$$;
revoke all on function auth_private.release_jobs(text, uuid[], integer[]) from public;

-- Deletes finished jobs older than p_older_than_secs, at most p_limit per call.
create function auth_private.prune_jobs(p_older_than_secs integer, p_limit integer)
    returns integer
    language sql
    volatile
    security definer
    set search_path = pg_catalog, pg_temp
    as $$
    with gone as (
        delete from public.jobs j
         where app.current_app_role() = 'system'
           and (j.org_id, j.id) in (
            select f.org_id, f.id from public.jobs f
             where f.state in ('completed', 'discarded')
               and f.finished_at < now() - make_interval(secs => p_older_than_secs)
             limit greatest(p_limit, 0)
             for update skip locked)
        returning 1
    )
    select count(*)::integer from gone
$$;
revoke all on function auth_private.prune_jobs(integer, integer) from public;

-- ---------------------------------------------------------------------------------------------------
-- Ticket analyses: one row per analysis run of a ticket, whatever its outcome.
create table ticket_analyses (
    org_id uuid not null references organizations (id),
    id uuid not null default gen_random_uuid(),
    ticket_id uuid not null,
    -- pending -> running -> done | failed; insufficient_credits waits for credits (then pending)
    status text not null,
    reason text not null,
    -- sha256 of the title and description analysed: one analysis per ticket version at a time
    content_hash text not null,
    provider text not null,
    model text not null,
    embedding_model text,
    prompt_version text not null,
    priority text,
    category text,
    skills text[] not null default '{}',
    sentiment text,
    language text,
    summary text,
    suggested_reply text,
    confidence real,
    prompt_tokens integer,
    completion_tokens integer,
    embedding_tokens integer,
    credits_held bigint not null default 0,
    credits_charged bigint not null default 0,
    hold_id uuid,
    job_id uuid,
    attempts integer not null default 0,
    duration_ms integer,
    error text,
    requested_by uuid references users (id) on delete set null,
    requested_by_api_key uuid,
    created_at timestamptz not null default clock_timestamp(),
    started_at timestamptz,
    finished_at timestamptz,
    primary key (org_id, id),
    constraint ticket_analyses_ticket_fkey foreign key (org_id, ticket_id)
        references tickets (org_id, id) on delete cascade,
    constraint ticket_analyses_hold_fkey foreign key (org_id, hold_id) references credit_ledger (org_id, id),
    constraint ticket_analyses_status_check
        check (status in ('pending', 'running', 'done', 'failed', 'insufficient_credits')),
    constraint ticket_analyses_reason_check check (reason in ('created', 'reanalyze')),
    constraint ticket_analyses_priority_check check (priority in ('low', 'medium', 'high', 'critical')),
    constraint ticket_analyses_sentiment_check check (sentiment in ('negative', 'neutral', 'positive')),
    constraint ticket_analyses_summary_length check (char_length(summary) <= 280),
    constraint ticket_analyses_confidence_check check (confidence between 0 and 1),
    constraint ticket_analyses_credits_check check (credits_held >= 0 and credits_charged between 0 and credits_held)
);
create index ticket_analyses_ticket_idx on ticket_analyses (org_id, ticket_id, created_at desc, id desc);
create index ticket_analyses_waiting_idx on ticket_analyses (org_id, created_at)
    where status = 'insufficient_credits';

alter table ticket_analyses enable row level security;
alter table ticket_analyses force row level security;
create policy tenant_isolation on ticket_analyses
    using (org_id = (select app.current_org_id()))
    with check (org_id = (select app.current_org_id()));
-- People who may create tickets request analyses; only the server's own work records results.
create policy ticket_analyses_request on ticket_analyses as restrictive for insert
    with check ((select app.current_app_role()) in ('owner', 'admin', 'agent', 'system'));
create policy ticket_analyses_record on ticket_analyses as restrictive for update
    using ((select app.current_app_role()) = 'system');

create trigger audit after insert or update or delete on ticket_analyses
    for each row execute function internal.audit_row('org_id', 'id');
create trigger lock_org before insert or update or delete on ticket_analyses
    for each statement execute function internal.lock_current_org();

-- Tells listeners (subscriptions, later) that an analysis finished: ids only, re-read under RLS.
create function internal.analysis_notify() returns trigger
    language plpgsql
    set search_path = pg_catalog, pg_temp
    as $$
begin
    perform pg_notify('deskgraph_analysis', json_build_object(
        'org_id', new.org_id, 'ticket_id', new.ticket_id, 'analysis_id', new.id, 'status', new.status)::text);
    return null;
end
$$;
revoke all on function internal.analysis_notify() from public;
create trigger analysis_notify after update of status on ticket_analyses
    for each row when (new.status in ('done', 'failed') and old.status is distinct from new.status)
    execute function internal.analysis_notify();

-- ---------------------------------------------------------------------------------------------------
-- Runtime privileges
grant select, insert, update on jobs to deskgraph_api;
grant select, insert, update on ticket_analyses to deskgraph_api;
grant execute on function auth_private.claim_jobs(text, text[], integer, integer) to deskgraph_api;
grant execute on function auth_private.extend_job_leases(text, uuid[], integer) to deskgraph_api;
grant execute on function auth_private.release_jobs(text, uuid[], integer[]) to deskgraph_api;
grant execute on function auth_private.prune_jobs(integer, integer) to deskgraph_api;
