//! Leader election (clientv3's `concurrency.Election`).
//!
//! Invariants:
//! - The leader is the candidate whose key `<prefix>/<lease hex>` has the lowest create
//!   revision; its value is the leader's proclamation.
//! - Only the current leader's key is ever rewritten by [`Election::proclaim`], guarded by its
//!   create revision, so a deposed leader's proclaim fails with `election: not leader`.

use crate::concurrency::{first_created, wait_deletes, Session};
use crate::{Cmp, CmpOp, DeleteOptions, Error, GetOptions, KeyValue, Op, PutOptions, Result, Txn};

/// An election under a key prefix, campaigned in through a [`Session`].
#[derive(Debug)]
pub struct Election<'a> {
    session: &'a Session,
    prefix: Vec<u8>,
    key: Vec<u8>,
    rev: i64,
}

impl<'a> Election<'a> {
    /// An election named `prefix` (a `/` is appended).
    pub fn new(session: &'a Session, prefix: impl Into<Vec<u8>>) -> Election<'a> {
        let mut prefix = prefix.into();
        prefix.push(b'/');
        Election {
            session,
            prefix,
            key: Vec::new(),
            rev: -1,
        }
    }

    fn put_opts(&self) -> PutOptions {
        PutOptions {
            lease: self.session.lease(),
            ..Default::default()
        }
    }

    /// Become a candidate with `value` and wait until elected.
    pub async fn campaign(&mut self, value: impl Into<Vec<u8>>) -> Result<()> {
        let value = value.into();
        let c = self.session.client();
        let mut key = self.prefix.clone();
        key.extend(format!("{:x}", self.session.lease()).into_bytes());
        let t = Txn::new()
            .when([Cmp::create_revision(key.clone(), CmpOp::Equal, 0)])
            .and_then([Op::put(key.clone(), value.clone(), &self.put_opts())])
            .or_else([Op::get(key.clone(), &GetOptions::default())]);
        let resp = c.txn(t).await?;
        self.key = key;
        if resp.succeeded {
            self.rev = resp.header.map(|h| h.revision).unwrap_or(0);
        } else {
            let kv = crate::concurrency::stm::first_range_kv(&resp)
                .ok_or(Error::SessionExpired(self.session.lease()))?;
            self.rev = kv.create_revision;
            if kv.value != value {
                self.proclaim(value).await?;
            }
        }
        if let Err(e) = wait_deletes(c, &self.prefix, self.rev - 1).await {
            let _ = self.resign().await;
            return Err(e);
        }
        Ok(())
    }

    /// As leader, replace the published value.
    pub async fn proclaim(&self, value: impl Into<Vec<u8>>) -> Result<()> {
        if self.rev < 0 {
            return Err(Error::InvalidArgument("election: not leader".into()));
        }
        let t = Txn::new()
            .when([Cmp::create_revision(
                self.key.clone(),
                CmpOp::Equal,
                self.rev,
            )])
            .and_then([Op::put(self.key.clone(), value, &self.put_opts())]);
        if !self.session.client().txn(t).await?.succeeded {
            return Err(Error::InvalidArgument("election: not leader".into()));
        }
        Ok(())
    }

    /// Stop being leader (or candidate).
    pub async fn resign(&mut self) -> Result<()> {
        if self.rev < 0 {
            return Ok(());
        }
        let t = Txn::new()
            .when([Cmp::create_revision(
                self.key.clone(),
                CmpOp::Equal,
                self.rev,
            )])
            .and_then([Op::delete(self.key.clone(), &DeleteOptions::default())]);
        self.session.client().txn(t).await?;
        self.rev = -1;
        Ok(())
    }

    /// The current leader's key-value (`None`: no leader).
    pub async fn leader(&self) -> Result<Option<KeyValue>> {
        first_created(self.session.client(), &self.prefix).await
    }

    /// This candidate's key (empty before `campaign`).
    pub fn key(&self) -> &[u8] {
        &self.key
    }
}
