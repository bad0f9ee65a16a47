-- Server instances that share fleet-wide limits (the per-organization rate limit).
--
-- Each running server announces itself every few seconds; an instance that stops gracefully leaves,
-- and one that dies expires on its own. Every instance divides the fleet-wide rate limit by the
-- number of live instances (never below a floor). Not tenant data: the table has no org_id and lives
-- in `internal`, where the runtime role has no USAGE; it is reached only through the two functions
-- below, which answer only the server's own work (`app.role = system`).

create table internal.server_instances (
    id uuid primary key,
    started_at timestamptz not null default now(),
    heartbeat_at timestamptz not null default now(),
    expires_at timestamptz not null
);

-- Announces (or renews) instance p_id for p_ttl_secs, forgets expired instances, and returns how many
-- are live, this one included.
create function auth_private.instance_heartbeat(p_id uuid, p_ttl_secs integer)
    returns integer
    language plpgsql
    volatile
    security definer
    set search_path = pg_catalog, pg_temp
    as $$
begin
    if app.current_app_role() is distinct from 'system' then
        raise exception 'instance heartbeats are the server''s own work' using errcode = '42501';
    end if;
    insert into internal.server_instances (id, expires_at)
    values (p_id, clock_timestamp() + make_interval(secs => greatest(p_ttl_secs, 1)))
    on conflict (id) do update
        set heartbeat_at = clock_timestamp(), expires_at = excluded.expires_at;
    delete from internal.server_instances where expires_at < clock_timestamp();
    return (select count(*)::integer from internal.server_instances
             where expires_at >= clock_timestamp());
end
$$;
revoke all on function auth_private.instance_heartbeat(uuid, integer) from public;

-- Removes instance p_id (graceful shutdown), so the others take its share at once.
create function auth_private.instance_leave(p_id uuid)
    returns void
    language plpgsql
    volatile
    security definer
    set search_path = pg_catalog, pg_temp
    as $$
begin
    if app.current_app_role() is distinct from 'system' then
        raise exception 'instance heartbeats are the server''s own work' using errcode = '42501';
    end if;
    delete from internal.server_instances where id = p_id;
end
$$;
revoke all on function auth_private.instance_leave(uuid) from public;

grant execute on function auth_private.instance_heartbeat(uuid, integer) to deskgraph_api;
grant execute on function auth_private.instance_leave(uuid) to deskgraph_api;
