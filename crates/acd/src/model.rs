//! What the ACD routes: agents with skills, seat pools with neighbours, queues, callers.
//! Read from `config/acd.yaml` (serde), checked into dense ids by [`Model::new`].

use std::collections::HashMap;
use std::time::Duration;

/// A skill (a problem type the IVR recognises: "refund", "order status", "vip").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SkillId(pub u16);

/// A seat pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PoolId(pub u16);

/// A queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueId(pub u16);

/// An agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AgentId(pub u32);

pub use crest_ids::CallId;

/// The weights of the routing score (per queue).
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Weights {
    /// Skill level for the caller's problem type.
    pub problem_type: f64,
    /// Customer tier.
    pub tier: f64,
    /// 1 − the agent's recent load.
    pub load: f64,
    /// The agent's rating (CSAT).
    pub rating: f64,
}

impl Default for Weights {
    fn default() -> Self {
        Self {
            problem_type: 0.4,
            tier: 0.3,
            load: 0.2,
            rating: 0.1,
        }
    }
}

/// How agents and callers are matched (the simulator compares them on the same traffic).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// The weighted score (skill level, tier, load, rating) and tier credits.
    #[default]
    Weighted,
    /// Callers with tier credits; the agent idle longest, whatever their skill level.
    LongestIdle,
    /// Callers strictly in arrival order; agents in turn (the one offered a call longest ago).
    Fifo,
}

impl Strategy {
    /// The name in configuration and reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Weighted => "weighted",
            Self::LongestIdle => "longest-idle",
            Self::Fifo => "fifo",
        }
    }
}

/// One agent in `acd.yaml` (and in the admin API's agent edits, as JSON).
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Login name (also the SIP user whose phone rings).
    pub name: String,
    /// The seat pool.
    pub pool: String,
    /// Skill name → level in 0..=1.
    pub skills: HashMap<String, f64>,
    /// Rating from customer satisfaction, 0..=1.
    #[serde(default = "half")]
    pub rating: f64,
    /// Languages the agent takes calls in (`en`, `zh-CN`: the primary tag counts); none
    /// listed: callers of any language.
    #[serde(default)]
    pub languages: Vec<String>,
}

fn half() -> f64 {
    0.5
}

/// One seat pool in `acd.yaml`.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolConfig {
    /// Name.
    pub name: String,
    /// Pools whose agents may take this pool's callers, in order, one overflow step each.
    #[serde(default)]
    pub neighbours: Vec<String>,
    /// Waiting time after which a caller's eligibility widens by one neighbour.
    #[serde(default = "overflow_default")]
    pub overflow_after_secs: u64,
    /// A standby pool: its agents are called in when the surge reaches 5× (the
    /// `StandbyAgents` level) and released when it falls back below.
    #[serde(default)]
    pub standby: bool,
}

fn overflow_default() -> u64 {
    30
}

/// One queue in `acd.yaml`.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    /// Name (routes and the IVR hand calls to it).
    pub name: String,
    /// The skill its callers need (their problem type).
    pub skill: String,
    /// The pool whose agents take its calls first.
    pub pool: String,
    /// Score weights.
    #[serde(default)]
    pub weights: Weights,
    /// Average handle time (talk and wrap-up) to start the wait estimates with; measured
    /// handle times take over as calls end.
    #[serde(default = "aht_default")]
    pub aht_secs: u64,
}

fn aht_default() -> u64 {
    180
}

/// `acd.yaml`.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AcdConfig {
    /// Seat pools.
    pub pools: Vec<PoolConfig>,
    /// Queues.
    pub queues: Vec<QueueConfig>,
    /// Agents.
    pub agents: Vec<AgentConfig>,
    /// How long an offered call rings before the next agent is tried.
    pub ring_secs: u64,
    /// Wrap-up after each call.
    pub wrap_up_secs: u64,
    /// Misses in a row that set an agent away.
    pub max_misses: u32,
    /// Seconds of waiting each tier is credited with (index = tier; VIP callers are treated
    /// as if they had arrived this much earlier, so a long wait still beats a tier).
    pub tier_credit_secs: Vec<u64>,
    /// Time constant of an agent's load (share of recent time spent on calls).
    pub load_window_secs: u64,
    /// The matching strategy.
    pub strategy: Strategy,
}

impl Default for AcdConfig {
    fn default() -> Self {
        Self {
            pools: Vec::new(),
            queues: Vec::new(),
            agents: Vec::new(),
            ring_secs: 15,
            wrap_up_secs: 10,
            max_misses: 3,
            tier_credit_secs: vec![0, 20, 60, 120],
            load_window_secs: 1800,
            strategy: Strategy::Weighted,
        }
    }
}

/// Why a configuration was refused: the key path and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct ModelError {
    /// e.g. `agents[3].pool`.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

/// A checked pool.
#[derive(Debug, Clone, PartialEq)]
pub struct Pool {
    /// Name.
    pub name: String,
    /// Neighbours in overflow order.
    pub neighbours: Vec<PoolId>,
    /// Overflow step interval.
    pub overflow_after: Duration,
    /// Called in only under a surge of 5× and more.
    pub standby: bool,
}

/// A checked queue.
#[derive(Debug, Clone, PartialEq)]
pub struct Queue {
    /// Name.
    pub name: String,
    /// Required skill.
    pub skill: SkillId,
    /// Home pool, then its neighbours: the pools in overflow order.
    pub pools: Vec<PoolId>,
    /// Score weights.
    pub weights: Weights,
    /// Configured average handle time.
    pub aht: Duration,
}

/// A checked agent.
#[derive(Debug, Clone, PartialEq)]
pub struct Agent {
    /// Name.
    pub name: String,
    /// Pool.
    pub pool: PoolId,
    /// Skills with levels, sorted by skill.
    pub skills: Vec<(SkillId, f64)>,
    /// Rating 0..=1.
    pub rating: f64,
    /// Languages (primary tags, lower case); empty: any.
    pub languages: Vec<String>,
    /// Removed through the admin API: takes no calls and is not listed (its id stays, and
    /// putting an agent of the same name back reuses it).
    pub retired: bool,
}

/// A language tag's primary subtag, lower case: `zh-CN` → `zh`.
pub fn primary_language(tag: &str) -> String {
    tag.split(['-', '_'])
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

impl Agent {
    /// Whether the agent takes a caller speaking `language` (`None`: unknown, anyone).
    pub fn speaks(&self, language: Option<&str>) -> bool {
        language.is_none_or(|l| self.languages.is_empty() || self.languages.iter().any(|x| x == l))
    }

    /// The level of `skill` (0 when the agent does not have it).
    pub fn level(&self, skill: SkillId) -> f64 {
        self.skills
            .binary_search_by_key(&skill, |s| s.0)
            .map_or(0.0, |i| self.skills[i].1)
    }
}

/// The checked model: dense ids, names resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    /// Skill names by id.
    pub skills: Vec<String>,
    /// Pools by id.
    pub pools: Vec<Pool>,
    /// Queues by id.
    pub queues: Vec<Queue>,
    /// Agents by id.
    pub agents: Vec<Agent>,
    /// Ring time.
    pub ring: Duration,
    /// Wrap-up time.
    pub wrap_up: Duration,
    /// Misses before away.
    pub max_misses: u32,
    /// Tier credits.
    pub tier_credit: Vec<Duration>,
    /// Load time constant.
    pub load_window: Duration,
    /// The matching strategy.
    pub strategy: Strategy,
}

impl Model {
    /// Checks `cfg`: every pool, skill and neighbour named exists, levels and ratings in 0..=1,
    /// weights not negative, names unique.
    pub fn new(cfg: &AcdConfig) -> Result<Self, ModelError> {
        let err = |key: String, message: String| ModelError { key, message };
        let mut pool_ids = HashMap::new();
        for (i, p) in cfg.pools.iter().enumerate() {
            if pool_ids.insert(p.name.clone(), PoolId(i as u16)).is_some() {
                return Err(err(
                    format!("pools[{i}].name"),
                    format!("{:?} appears twice", p.name),
                ));
            }
        }
        let pool = |key: String, name: &str| {
            pool_ids
                .get(name)
                .copied()
                .ok_or_else(|| err(key, format!("no pool named {name:?}")))
        };
        let mut pools = Vec::with_capacity(cfg.pools.len());
        for (i, p) in cfg.pools.iter().enumerate() {
            let mut neighbours = Vec::new();
            for (j, n) in p.neighbours.iter().enumerate() {
                let id = pool(format!("pools[{i}].neighbours[{j}]"), n)?;
                if id.0 as usize == i || neighbours.contains(&id) {
                    return Err(err(
                        format!("pools[{i}].neighbours[{j}]"),
                        format!("{n:?} is the pool itself or listed twice"),
                    ));
                }
                neighbours.push(id);
            }
            pools.push(Pool {
                name: p.name.clone(),
                neighbours,
                overflow_after: Duration::from_secs(p.overflow_after_secs),
                standby: p.standby,
            });
        }
        let mut skills: Vec<String> = Vec::new();
        let mut skill_id = |name: &str| -> SkillId {
            match skills.iter().position(|s| s == name) {
                Some(i) => SkillId(i as u16),
                None => {
                    skills.push(name.to_owned());
                    SkillId((skills.len() - 1) as u16)
                }
            }
        };
        let mut queues = Vec::with_capacity(cfg.queues.len());
        for (i, q) in cfg.queues.iter().enumerate() {
            if cfg.queues[..i].iter().any(|o| o.name == q.name) {
                return Err(err(
                    format!("queues[{i}].name"),
                    format!("{:?} appears twice", q.name),
                ));
            }
            let w = q.weights;
            if [w.problem_type, w.tier, w.load, w.rating]
                .iter()
                .any(|x| x.is_nan() || *x < 0.0)
            {
                return Err(err(
                    format!("queues[{i}].weights"),
                    "weights must be 0 or more".into(),
                ));
            }
            let home = pool(format!("queues[{i}].pool"), &q.pool)?;
            let mut order = vec![home];
            order.extend(pools[home.0 as usize].neighbours.iter().copied());
            queues.push(Queue {
                name: q.name.clone(),
                skill: skill_id(&q.skill),
                pools: order,
                weights: w,
                aht: Duration::from_secs(q.aht_secs.max(1)),
            });
        }
        let mut model = Self {
            skills,
            pools,
            queues,
            agents: Vec::with_capacity(cfg.agents.len()),
            ring: Duration::from_secs(cfg.ring_secs.max(1)),
            wrap_up: Duration::from_secs(cfg.wrap_up_secs),
            max_misses: cfg.max_misses.max(1),
            tier_credit: cfg
                .tier_credit_secs
                .iter()
                .map(|s| Duration::from_secs(*s))
                .collect(),
            load_window: Duration::from_secs(cfg.load_window_secs.max(1)),
            strategy: cfg.strategy,
        };
        for (i, a) in cfg.agents.iter().enumerate() {
            let key = format!("agents[{i}]");
            if cfg.agents[..i].iter().any(|o| o.name == a.name) {
                return Err(err(
                    format!("{key}.name"),
                    format!("{:?} appears twice", a.name),
                ));
            }
            model.check_agent(&key, a)?;
            let agent = model.resolve_agent(a);
            model.agents.push(agent);
        }
        Ok(model)
    }

    /// Checks one agent's entry against the model (its pool exists, levels and rating within
    /// 0..=1, a name); errors name keys under `key` (`agents[3]`, or `agent` for an edit).
    pub fn check_agent(&self, key: &str, a: &AgentConfig) -> Result<(), ModelError> {
        let err = |k: String, message: String| ModelError {
            key: format!("{key}.{k}"),
            message,
        };
        if a.name.trim().is_empty() || a.name.len() > 64 || a.name.contains(char::is_whitespace) {
            return Err(err(
                "name".into(),
                "1 to 64 characters, no spaces (the agent's SIP user)".into(),
            ));
        }
        if !self.pools.iter().any(|p| p.name == a.pool) {
            return Err(err("pool".into(), format!("no pool named {:?}", a.pool)));
        }
        if !(0.0..=1.0).contains(&a.rating) {
            return Err(err("rating".into(), "must be within 0..1".into()));
        }
        let mut names: Vec<&String> = a.skills.keys().collect();
        names.sort();
        for name in names {
            if name.trim().is_empty() {
                return Err(err("skills".into(), "a skill needs a name".into()));
            }
            if !(0.0..=1.0).contains(&a.skills[name]) {
                return Err(err(
                    format!("skills.{name}"),
                    "level must be within 0..1".into(),
                ));
            }
        }
        Ok(())
    }

    /// The checked agent of a [`Self::check_agent`]ed entry; skills no queue asks for get
    /// new ids.
    pub(crate) fn resolve_agent(&mut self, a: &AgentConfig) -> Agent {
        let mut entries: Vec<_> = a.skills.iter().collect();
        entries.sort_by(|x, y| x.0.cmp(y.0));
        let mut skills: Vec<(SkillId, f64)> = entries
            .into_iter()
            .map(|(name, level)| {
                let id = match self.skills.iter().position(|s| s == name) {
                    Some(i) => SkillId(i as u16),
                    None => {
                        self.skills.push(name.clone());
                        SkillId((self.skills.len() - 1) as u16)
                    }
                };
                (id, *level)
            })
            .collect();
        skills.sort_by_key(|s| s.0);
        Agent {
            name: a.name.clone(),
            pool: PoolId(
                self.pools
                    .iter()
                    .position(|p| p.name == a.pool)
                    .expect("checked") as u16,
            ),
            skills,
            rating: a.rating,
            languages: a.languages.iter().map(|l| primary_language(l)).collect(),
            retired: false,
        }
    }

    /// An agent's entry as `acd.yaml` (and the API) write it.
    pub fn agent_config(&self, a: AgentId) -> AgentConfig {
        let agent = &self.agents[a.0 as usize];
        AgentConfig {
            name: agent.name.clone(),
            pool: self.pools[agent.pool.0 as usize].name.clone(),
            skills: agent
                .skills
                .iter()
                .map(|(s, l)| (self.skills[s.0 as usize].clone(), *l))
                .collect(),
            rating: agent.rating,
            languages: agent.languages.clone(),
        }
    }

    /// The queue named `name`.
    pub fn queue(&self, name: &str) -> Option<QueueId> {
        self.queues
            .iter()
            .position(|q| q.name == name)
            .map(|i| QueueId(i as u16))
    }

    /// The agents of standby pools (they log in only under a surge of 5× and more).
    pub fn standby_agents(&self) -> Vec<AgentId> {
        self.agents
            .iter()
            .enumerate()
            .filter(|(_, a)| self.pools[a.pool.0 as usize].standby && !a.retired)
            .map(|(i, _)| AgentId(i as u32))
            .collect()
    }

    /// The agent named `name` (not a retired one).
    pub fn agent(&self, name: &str) -> Option<AgentId> {
        self.slot(name)
            .filter(|a| !self.agents[a.0 as usize].retired)
    }

    /// The id of the agent named `name`, retired or not.
    pub(crate) fn slot(&self, name: &str) -> Option<AgentId> {
        self.agents
            .iter()
            .position(|a| a.name == name)
            .map(|i| AgentId(i as u32))
    }
}

/// A caller as the IVR hands them over.
#[derive(Debug, Clone, PartialEq)]
pub struct Caller {
    /// The call.
    pub call: CallId,
    /// The queue (from the route or the IVR's intent).
    pub queue: QueueId,
    /// Customer tier: 0 normal, higher is more valuable (VIP).
    pub tier: u8,
    /// The caller's number, for callbacks and logs.
    pub number: String,
    /// The caller's language (a tag such as `zh-CN`), when the IVR knows it: only agents who
    /// take calls in it (or list no languages) are offered the call.
    pub language: Option<String>,
    /// Only this agent is offered the call (an agent transferred the caller to them); the
    /// caller waits in the queue until they are free.
    pub agent: Option<AgentId>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Model, ModelError> {
        let cfg: AcdConfig = serde_saphyr::from_str(text).expect("valid YAML");
        Model::new(&cfg)
    }

    #[test]
    fn the_shipped_acd_yaml_loads() {
        let text = include_str!("../../../config/acd.yaml");
        let m = load(text).unwrap();
        let refund = &m.queues[m.queue("refund").unwrap().0 as usize];
        let names: Vec<&str> = refund
            .pools
            .iter()
            .map(|p| m.pools[p.0 as usize].name.as_str())
            .collect();
        assert_eq!(
            names,
            ["hangzhou", "shanghai"],
            "home pool, then its neighbours"
        );
        let carol = &m.agents[m.agent("carol").unwrap().0 as usize];
        assert_eq!(carol.level(refund.skill), 1.0);
        let dave = &m.agents[m.agent("dave").unwrap().0 as usize];
        assert_eq!(dave.rating, 0.5, "unset rating");
        assert_eq!(m.ring, Duration::from_secs(15));
    }

    #[test]
    fn mistakes_name_the_key() {
        let base = "pools:\n  - {name: a, neighbours: [b]}\n  - {name: b}\nqueues:\n  - {name: q, skill: s, pool: a}\n";
        for (extra, key) in [
            (
                "agents:\n  - {name: x, pool: c, skills: {s: 1.0}}\n",
                "agents[0].pool",
            ),
            (
                "agents:\n  - {name: x, pool: a, skills: {s: 1.5}}\n",
                "agents[0].skills.s",
            ),
            (
                "agents:\n  - {name: x, pool: a, skills: {}, rating: 2}\n",
                "agents[0].rating",
            ),
            (
                "agents:\n  - {name: x, pool: a, skills: {}}\n  - {name: x, pool: b, skills: {}}\n",
                "agents[1].name",
            ),
        ] {
            let e = load(&format!("{base}{extra}")).unwrap_err();
            assert_eq!(e.key, key, "{e}");
        }
        let e = load("pools:\n  - {name: a, neighbours: [a]}\n").unwrap_err();
        assert_eq!(e.key, "pools[0].neighbours[0]");
        let e =
            load("pools:\n  - {name: a}\nqueues:\n  - {name: q, skill: s, pool: z}\n").unwrap_err();
        assert_eq!(
            (e.key.as_str(), e.message.as_str()),
            ("queues[0].pool", "no pool named \"z\"")
        );
    }
}
