-- Room on each page of notifications for the version its delivery claim writes: the claim
-- changes no indexed column (claimed_by, claim_expires), so on the same page it is a HOT
-- update, with no new entry in any of the table's four indexes. On full pages every claim
-- wrote a version elsewhere and an entry into each index (and B-tree bottom-up deletion
-- later visited the heap to clear them).
ALTER TABLE notifications SET (fillfactor = 50);
