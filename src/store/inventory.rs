//! R18's marks: which services were checked on which local day of their top company
//! (`polled`, written with the results that show it), and the days whose `inventory` record
//! has gone (`inventory_sent`). Marks are kept [`KEPT_DAYS`] after their day was sent.

use jiff::ToSpan;
use jiff::civil::Date;
use rusqlite::{Connection, params};

use super::writer::Writer;
use crate::document::{Category, CheckKind};
use crate::inventory::Polled;

/// Days of marks kept behind the last day sent (for a look back; nothing reads them again).
pub const KEPT_DAYS: i64 = 35;

/// Appends a mark (a service marked again after a restart is read once).
pub(super) fn mark(tx: &Connection, p: &Polled) -> rusqlite::Result<usize> {
    tx.prepare_cached(
        "INSERT INTO polled (company, day, service, zone, site, device, category, kind)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        p.company,
        p.day.to_string(),
        p.service,
        p.zone,
        p.site,
        p.device,
        p.category.as_str(),
        p.kind.as_str()
    ])
}

/// Marks a company's day sent, and forgets what is older than [`KEPT_DAYS`] before it.
pub(super) fn sent(tx: &Connection, company: &str, day: Date) -> rusqlite::Result<usize> {
    tx.execute(
        "INSERT OR IGNORE INTO inventory_sent (company, day) VALUES (?1, ?2)",
        params![company, day.to_string()],
    )?;
    let Ok(cutoff) = day.checked_sub(KEPT_DAYS.days()) else {
        return Ok(0);
    };
    let cutoff = cutoff.to_string();
    tx.execute(
        "DELETE FROM polled WHERE company = ?1 AND day < ?2",
        params![company, cutoff],
    )?;
    tx.execute(
        "DELETE FROM inventory_sent WHERE company = ?1 AND day < ?2",
        params![company, cutoff],
    )
}

impl Writer {
    /// A company's marks of a day, one per service (its first), by device then service (the
    /// order counting relies on).
    pub(super) fn polled(&mut self, company: &str, day: Date) -> rusqlite::Result<Vec<Polled>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT service, zone, site, device, category, kind FROM polled
             WHERE company = ?1 AND day = ?2 ORDER BY id",
        )?;
        let rows = stmt.query_map(params![company, day.to_string()], |r| {
            let category: String = r.get(4)?;
            let kind: String = r.get(5)?;
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, category, kind))
        })?;
        let mut marks: Vec<Polled> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for row in rows {
            let (service, zone, site, device, category, kind): (String, String, String, String, String, String) = row?;
            if !seen.insert(service.clone()) {
                continue;
            }
            // Written from the enums: another name is a file edited by hand, and skipped.
            let (Some(category), Some(kind)) = (Category::from_name(&category), CheckKind::from_name(&kind)) else {
                tracing::warn!(
                    service,
                    category,
                    kind,
                    "an inventory mark with an unknown category or kind is skipped"
                );
                continue;
            };
            marks.push(Polled {
                company: company.to_string(),
                day,
                zone,
                site,
                device,
                category,
                service,
                kind,
            });
        }
        marks.sort_by(|a, b| (&a.device, &a.service).cmp(&(&b.device, &b.service)));
        Ok(marks)
    }

    /// `(company, day, zone)` of every day with marks and no record sent, oldest first.
    pub(super) fn unsent_inventory_days(&mut self) -> rusqlite::Result<Vec<(String, Date, String)>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT p.company, p.day, MIN(p.zone) FROM polled p
             WHERE NOT EXISTS (SELECT 1 FROM inventory_sent s WHERE s.company = p.company AND s.day = p.day)
             GROUP BY p.company, p.day ORDER BY p.day, p.company",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?))
        })?;
        let mut days = Vec::new();
        for row in rows {
            let (company, day, zone) = row?;
            match day.parse::<Date>() {
                Ok(day) => days.push((company, day, zone)),
                Err(_) => tracing::warn!(company, day, "an inventory mark with an unreadable day is skipped"),
            }
        }
        Ok(days)
    }
}
