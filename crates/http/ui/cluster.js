// Cluster page: members, leader, raft term/index, db size and in-use, alarms, health and
// version, from MemberList, Status and Alarm(GET). Status is the answering member's own.

import {call} from './api.js';
import {bytes, facts, fill, h, hexId, table} from './dom.js';

const REFRESH_MS = 5000;

export async function render(main) {
  const body = h('div', {id: 'cluster'});
  const when = h('span', {class: 'muted'});
  fill(main, h('h1', {}, 'Cluster ', when), body);
  let timer = null;
  let stopped = false;
  const tick = async () => {
    await load(body);
    when.textContent = `updated ${new Date().toLocaleTimeString()}`;
    if (!stopped) timer = setTimeout(tick, REFRESH_MS);
  };
  await tick();
  return () => { stopped = true; clearTimeout(timer); };
}

async function load(body) {
  const [members, status, alarms] = await Promise.allSettled([
    call('cluster/member/list', {}),
    call('maintenance/status', {}),
    call('maintenance/alarm', {action: 'GET'}),
  ]);
  const st = status.status === 'fulfilled' ? status.value : null;
  const leader = st ? st.leader : undefined;
  const alarmList = alarms.status === 'fulfilled' ? (alarms.value.alarms || []) : null;

  const errors = [members, status, alarms]
    .filter((r) => r.status === 'rejected').map((r) => r.reason.message);
  const healthy = st && leader && leader !== '0' && !(st.errors || []).length &&
    alarmList && !alarmList.length;
  const health = h('span', {class: `badge ${healthy ? 'ok' : 'bad'}`, id: 'health'},
    healthy ? 'healthy' : 'unhealthy');
  const why = [];
  if (st && (!leader || leader === '0')) why.push('no leader');
  if (st && (st.errors || []).length) why.push(...st.errors);
  if (alarmList && alarmList.length) why.push('alarms raised');

  const summary = st ? facts([
    ['Health', [health, why.length ? ` ${why.join('; ')}` : '']],
    ['Version', h('span', {id: 'version'}, st.version || '?')],
    ['Leader', h('span', {id: 'leader'}, leader && leader !== '0' ? hexId(leader) : 'none')],
    ['Raft term', h('span', {id: 'raft-term'}, st.raftTerm || '0')],
    ['Raft index', h('span', {id: 'raft-index'}, st.raftIndex || '0')],
    ['Raft applied index', st.raftAppliedIndex || '0'],
    ['Revision', (st.header && st.header.revision) || '0'],
    ['DB size', h('span', {id: 'db-size'}, bytes(st.dbSize))],
    ['DB size in use', h('span', {id: 'db-in-use'}, bytes(st.dbSizeInUse))],
    ['DB quota', st.dbSizeQuota && st.dbSizeQuota !== '0' ? bytes(st.dbSizeQuota) : 'none'],
    ['Answering member', `${hexId(st.header && st.header.member_id)}${st.isLearner ? ' (learner)' : ''}`],
  ]) : null;

  let memberTable = null;
  if (members.status === 'fulfilled') {
    const list = members.value.members || [];
    memberTable = table(['ID', 'Name', 'Role', 'Peer URLs', 'Client URLs'], list.map((m) =>
      h('tr', {'data-member': hexId(m.ID)},
        h('td', {class: 'mono'}, hexId(m.ID)),
        h('td', {}, m.name || h('i', {}, 'unstarted')),
        h('td', {}, m.ID === leader ? h('span', {class: 'badge ok'}, 'leader')
          : m.isLearner ? 'learner' : 'follower'),
        h('td', {class: 'mono'}, (m.peerURLs || []).join(', ')),
        h('td', {class: 'mono'}, (m.clientURLs || []).join(', ')))), {id: 'members'});
  }

  let alarmsEl = null;
  if (alarmList) {
    alarmsEl = alarmList.length
      ? table(['Member', 'Alarm'], alarmList.map((a) =>
        h('tr', {}, h('td', {class: 'mono'}, hexId(a.memberID)), h('td', {}, a.alarm || 'NONE'))))
      : h('p', {class: 'muted', id: 'alarms'}, 'No alarms.');
  }

  fill(body,
    errors.length ? h('p', {class: 'msg error', role: 'alert'}, errors.join(' · ')) : null,
    summary,
    h('h2', {}, `Members (${members.status === 'fulfilled' ? (members.value.members || []).length : '?'})`),
    memberTable,
    h('h2', {}, 'Alarms'),
    alarmsEl);
}
