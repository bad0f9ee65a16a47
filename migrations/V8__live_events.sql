-- Live desk: change notifications for GraphQL subscriptions, and internal notes kept from read-only
-- roles.
--
-- Every change a subscriber may want to hear of is announced on channel `deskgraph_live` when its
-- transaction commits (NOTIFY is transactional: a rolled-back write announces nothing). The payload
-- carries ids, a kind and the time of the change only; no title, body or other tenant data. Each
-- server instance LISTENs on one direct connection and re-reads what it heard in every subscriber's
-- own tenant transaction, so row level security decides delivery exactly as for a query.

-- One trigger function for the three tables (the kind is the trigger's argument; for tickets it
-- follows the operation). Trigger functions need no privilege of the writer, a function called from
-- one would (the runtime role has no USAGE on `internal`), hence no helper.
create function internal.live_notify() returns trigger
    language plpgsql
    set search_path = pg_catalog, pg_temp
    as $$
declare
    v_kind text := tg_argv[0];
    v_ticket_id uuid;
    v_comment_id uuid;
begin
    if tg_table_name = 'tickets' then
        v_ticket_id := new.id;
        v_kind := case tg_op when 'INSERT' then 'created' else 'updated' end;
    elsif tg_table_name = 'ticket_comments' then
        v_ticket_id := new.ticket_id;
        v_comment_id := new.id;
    else
        v_ticket_id := new.ticket_id;
    end if;
    perform pg_notify('deskgraph_live', json_build_object(
        'org_id', new.org_id, 'kind', v_kind, 'ticket_id', v_ticket_id, 'comment_id', v_comment_id,
        'at', clock_timestamp())::text);
    return null;
end
$$;
revoke all on function internal.live_notify() from public;

create trigger live_notify after insert or update on tickets
    for each row execute function internal.live_notify('ticket');
create trigger live_notify after insert on ticket_comments
    for each row execute function internal.live_notify('commented');

-- V4 announced finished analyses on a channel of their own that nothing listened to; they now go to
-- `deskgraph_live` with the rest.
drop trigger analysis_notify on ticket_analyses;
drop function internal.analysis_notify();

create trigger live_notify after update of status on ticket_analyses
    for each row when (new.status in ('done', 'failed') and old.status is distinct from new.status)
    execute function internal.live_notify('analyzed');

-- Internal notes are for the team that works tickets: owners, admins, agents (people and keys) and
-- the server's own work. Viewers and analyst keys read a ticket's public comments only; queries,
-- counts and live events alike.
create policy ticket_comments_internal_read on ticket_comments as restrictive for select
    using (not internal or (select app.current_app_role()) in ('owner', 'admin', 'agent', 'system'));
