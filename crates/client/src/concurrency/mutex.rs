//! A distributed mutex (clientv3's `concurrency.Mutex`).
//!
//! Invariant: the mutex is held exactly while this waiter's key `<prefix>/<lease hex>` has
//! the lowest create revision under the prefix; unlock deletes that key.

use crate::concurrency::{first_created, wait_deletes, Session};
use crate::{Cmp, CmpOp, DeleteOptions, Error, GetOptions, Op, PutOptions, Result, Txn};

/// A mutex under a key prefix, held through a [`Session`]'s lease.
#[derive(Debug)]
pub struct Mutex<'a> {
    session: &'a Session,
    prefix: Vec<u8>,
    key: Vec<u8>,
    rev: i64,
}

impl<'a> Mutex<'a> {
    /// A mutex named `prefix` (a `/` is appended, as in clientv3).
    pub fn new(session: &'a Session, prefix: impl Into<Vec<u8>>) -> Mutex<'a> {
        let mut prefix = prefix.into();
        prefix.push(b'/');
        let mut key = prefix.clone();
        key.extend(format!("{:x}", session.lease()).into_bytes());
        Mutex {
            session,
            prefix,
            key,
            rev: -1,
        }
    }

    /// This waiter's key.
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// The create revision of this waiter's key (-1 before `lock`).
    pub fn revision(&self) -> i64 {
        self.rev
    }

    /// Block until the mutex is held.
    pub async fn lock(&mut self) -> Result<()> {
        let c = self.session.client();
        let t = Txn::new()
            .when([Cmp::create_revision(self.key.clone(), CmpOp::Equal, 0)])
            .and_then([Op::put(
                self.key.clone(),
                "",
                &PutOptions {
                    lease: self.session.lease(),
                    ..Default::default()
                },
            )])
            .or_else([Op::get(self.key.clone(), &GetOptions::default())]);
        let resp = c.txn(t).await?;
        self.rev = if resp.succeeded {
            resp.header.map(|h| h.revision).unwrap_or(0)
        } else {
            crate::concurrency::stm::first_range_kv(&resp)
                .map(|kv| kv.create_revision)
                .unwrap_or(0)
        };
        let owner = first_created(c, &self.prefix).await?;
        if owner.is_some_and(|kv| kv.create_revision == self.rev) {
            return Ok(());
        }
        if let Err(e) = wait_deletes(c, &self.prefix, self.rev - 1).await {
            let _ = self.unlock().await;
            return Err(e);
        }
        // Our key may have gone with an expired lease while we waited.
        if c.get(self.key.clone()).await?.is_none() {
            return Err(Error::SessionExpired(self.session.lease()));
        }
        Ok(())
    }

    /// Release the mutex (delete this waiter's key).
    pub async fn unlock(&mut self) -> Result<()> {
        self.session
            .client()
            .delete(self.key.clone(), &DeleteOptions::default())
            .await?;
        self.rev = -1;
        Ok(())
    }
}
