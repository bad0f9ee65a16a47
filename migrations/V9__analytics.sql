-- Analytics: the database's own check of who may read them, and the indexes the figures scan.
--
-- Analytics are computed on the fly from the rows (exact, nothing to keep in step), so what they need
-- is indexes that let each figure read only its window: resolutions by time, analyses by request
-- time, members' public replies by time. Tickets by creation time and the ledger by time have theirs
-- (V1, V2).

-- Owners, admins and analyst keys read analytics; every analytics statement calls this first, so a
-- resolver that forgot its check still cannot hand them to an agent or a viewer.
create function app.analytics_reader() returns boolean
    language plpgsql
    stable
    set search_path = pg_catalog, pg_temp
    as $$
begin
    if app.current_app_role() is null or app.current_app_role() not in ('owner', 'admin', 'analyst') then
        raise exception 'analytics are for owners, admins and analyst keys'
            using errcode = 'insufficient_privilege';
    end if;
    return true;
end
$$;

create index tickets_resolved_idx on tickets (org_id, resolved_at) include (created_at, workspace_id)
    where resolved_at is not null;
-- The backlog at the start of a window: unresolved tickets by filing time (few rows: open ones only).
create index tickets_unresolved_idx on tickets (org_id, created_at) include (workspace_id)
    where resolved_at is null;
create index ticket_analyses_created_idx on ticket_analyses (org_id, created_at);
-- First responses: public replies by members, by time, with their ticket (index-only).
create index ticket_comments_first_reply_idx on ticket_comments (org_id, created_at) include (ticket_id)
    where not internal and author_id is not null and api_key_id is null;
