-- Invitations bound to the invited person: accepting takes the caller's e-mail as the server verified
-- it from their token, and only the person the invitation was sent to may accept it.
--
-- The caller is not a member yet, so the invitation is invisible to them under RLS: the check has to
-- happen here, in the SECURITY DEFINER function. The old one-argument function, which let whoever
-- held the token join, is dropped so that it cannot be called around the check.

drop function auth_private.accept_invitation(bytea);

-- Accepts an invitation by the sha256 of its one-time token for the current user (app.user_id).
-- p_email is the caller's e-mail from their verified token, trimmed and lower-cased by the server; NULL
-- turns the binding off (DESKGRAPH_INVITATIONS_BIND_EMAIL=false: the token alone admits), and any value
-- that matches no invitation (the server sends '' for a caller without a verified e-mail) is refused.
-- Returns the organization and role, the outcome — 'accepted', 'already_member', 'invalid' (unknown or
-- used, or no user), 'expired', or 'wrong_person' (the invitation is for another e-mail; nothing is
-- written, the invitation stays pending) — and, for 'wrong_person' only, the invited e-mail, which
-- the server masks before showing it (never the organization).
create function auth_private.accept_invitation(p_token_hash bytea, p_email text)
    returns table (org_id uuid, role text, outcome text, invited_email text)
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
        return query select null::uuid, null::text, 'invalid'::text, null::text;
        return;
    end if;
    select * into v_inv from public.invitations i
     where i.token_hash = p_token_hash and i.accepted_at is null;
    if not found then
        return query select null::uuid, null::text, 'invalid'::text, null::text;
        return;
    end if;
    -- The wrong person is refused before the organization's lock is taken and before anything is
    -- written (an invitation's e-mail never changes, so the unlocked read decides it).
    if p_email is not null and lower(btrim(v_inv.email)) <> lower(btrim(p_email)) then
        return query select null::uuid, null::text, 'wrong_person'::text, v_inv.email;
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
        v_outcome,
        null::text;
end
$$;

revoke all on function auth_private.accept_invitation(bytea, text) from public;
grant execute on function auth_private.accept_invitation(bytea, text) to deskgraph_api;
