package nutsstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nutsdb/nutsdb"
)

// The record layout below is nutsdb v1.1.0's (entry.go: Encode, ParseMeta;
// recovery_reader.go: readEntry; db.go: parseDataFiles):
//
//	crc uint32 LE | uvarint timestamp, keySize, valueSize, flag, ttl,
//	status, ds, txID, bucketID | key | value
//
// crc is the IEEE CRC-32 of everything after it. A record whose crc,
// timestamp, keySize and valueSize are all zero ends the segment (segments
// are preallocated with zeros); so do fewer than MinEntryHeaderSize bytes.
// The last record of a transaction has status Committed; nutsdb replays a
// transaction only once it reads that record.

// segment is one nutsdb data file, in nutsdb's replay order.
type segment struct {
	id   int64
	name string
}

// listSegments returns the data files nutsdb would replay, in its order:
// merge files ("merge_N.dat", ids from math.MinInt64) then "N.dat".
func listSegments(dir string) ([]segment, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var segs []segment
	for _, e := range entries {
		name := e.Name()
		base, ok := strings.CutSuffix(name, nutsdb.DataSuffix)
		if e.IsDir() || !ok {
			continue
		}
		if seq, ok := strings.CutPrefix(base, "merge_"); ok {
			n, err := strconv.Atoi(seq)
			if err == nil && n >= 0 {
				segs = append(segs, segment{id: math.MinInt64 + int64(n), name: name})
			}
			continue
		}
		id, err := strconv.ParseInt(base, 10, 64)
		if err == nil && id >= 0 && strconv.FormatInt(id, 10) == base {
			segs = append(segs, segment{id: id, name: name})
		}
	}
	slices.SortFunc(segs, func(a, b segment) int {
		switch {
		case a.id < b.id:
			return -1
		case a.id > b.id:
			return 1
		}
		return 0
	})
	return segs, nil
}

// recordInfo is one intact record.
type recordInfo struct {
	off, size int64
	txID      uint64
	committed bool
}

// walkSegment walks the records of one segment, data, from its start and
// calls fn for each intact one. It returns where the walk stopped and, if it
// stopped on a record that does not verify, why.
func walkSegment(data []byte, fn func(recordInfo)) (end int64, damage string) {
	size := int64(len(data))
	var off int64
	for {
		rem := size - off
		if rem < nutsdb.MinEntryHeaderSize {
			return off, ""
		}
		w := data[off : off+min(rem, nutsdb.MaxEntryHeaderSize)]
		crc := binary.LittleEndian.Uint32(w)
		if crc == 0 && w[4] == 0 && w[5] == 0 && w[6] == 0 {
			return off, "" // no crc, timestamp, key or value: the zeros after the last record
		}
		var f [9]uint64 // timestamp, keySize, valueSize, flag, ttl, status, ds, txID, bucketID
		i, bad := 4, false
		for k := range f {
			v, n := binary.Uvarint(w[i:])
			if n <= 0 {
				bad = true
				break
			}
			f[k], i = v, i+n
		}
		if bad || f[1] > math.MaxUint32 || f[2] > math.MaxUint32 {
			return off, "malformed record header"
		}
		total := int64(i) + int64(f[1]) + int64(f[2])
		if total > rem {
			return off, "record runs past the end of the file"
		}
		if crc32.ChecksumIEEE(data[off+4:off+total]) != crc {
			return off, "checksum mismatch"
		}
		fn(recordInfo{off: off, size: total, txID: f[7], committed: f[5] == uint64(nutsdb.Committed)})
		off += total
	}
}

// nonZeroEnd returns the length of b without its trailing zeros.
func nonZeroEnd(b []byte) int {
	i := len(b)
	for i >= 8 && binary.LittleEndian.Uint64(b[i-8:i]) == 0 {
		i -= 8
	}
	for i > 0 && b[i-1] == 0 {
		i--
	}
	return i
}

// repairer cuts damaged files, keeping a copy of each in one directory.
type repairer struct {
	dir   string
	now   time.Time
	aside string // created on first use
	notes []string
}

func (r *repairer) asideDir() (string, error) {
	if r.aside != "" {
		return r.aside, nil
	}
	base := filepath.Join(r.dir, "damaged-"+r.now.UTC().Format("20060102T150405Z"))
	p := base
	for n := 2; ; n++ {
		err := os.Mkdir(p, 0o700)
		if err == nil {
			r.aside = p
			return p, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return "", err
		}
		p = fmt.Sprintf("%s-%d", base, n)
	}
}

// cut copies the file name aside, then truncates it to off. It returns the
// note that says so.
func (r *repairer) cut(name string, off int64, reason string) error {
	path := filepath.Join(r.dir, name)
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	aside, err := r.asideDir()
	if err != nil {
		return err
	}
	copyPath := filepath.Join(aside, name)
	if err := writeFileSync(copyPath, data); err != nil {
		return err
	}
	if err := syncDir(aside); err != nil {
		return err
	}
	if err := truncateSync(path, off); err != nil {
		return err
	}
	cut := int64(0) // up to the last byte that is not zero
	if off < int64(len(data)) {
		cut = int64(nonZeroEnd(data[off:]))
	}
	r.notes = append(r.notes, fmt.Sprintf("%s: cut %d bytes at offset %d (%s), file was %d bytes; the whole file was copied to %s",
		name, cut, off, reason, len(data), copyPath))
	return nil
}

// moveAside moves the file name into the aside directory, if it exists.
func (r *repairer) moveAside(name, reason string) error {
	path := filepath.Join(r.dir, name)
	if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	aside, err := r.asideDir()
	if err != nil {
		return err
	}
	if err := os.Rename(path, filepath.Join(aside, name)); err != nil {
		return err
	}
	r.notes = append(r.notes, fmt.Sprintf("%s: moved to %s (%s)", name, aside, reason))
	return nil
}

// repair makes the directory's nutsdb files open cleanly and replay only
// whole transactions. It returns what it did, one note per change; nothing
// is deleted.
func repair(dir string, segmentSize int64, now time.Time) ([]string, error) {
	r := &repairer{dir: dir, now: now}
	if err := r.repairBuckets(); err != nil {
		return r.notes, err
	}
	if err := r.repairSegments(segmentSize); err != nil {
		return r.notes, err
	}
	if len(r.notes) > 0 {
		if err := syncDir(dir); err != nil {
			return r.notes, err
		}
	}
	return r.notes, nil
}

func (r *repairer) repairSegments(segmentSize int64) error {
	segs, err := listSegments(r.dir)
	if err != nil {
		return err
	}
	// open is where the transaction still waiting for its commit mark
	// starts: a transaction may span segments.
	type txStart struct {
		seg  int
		off  int64
		txID uint64
	}
	var open *txStart
	// cutAt cuts at open's start if a transaction is open, else at
	// (seg, off), and empties the segments in between, which then hold
	// only the unfinished transaction.
	cutAt := func(seg int, off int64, reason string) error {
		from, fromOff := seg, off
		if open != nil {
			from, fromOff = open.seg, open.off
			if from != seg || fromOff != off {
				reason += fmt.Sprintf(", cut from the start of its transaction (%s offset %d)", segs[from].name, fromOff)
			}
		}
		for j := from; j <= seg; j++ {
			o := int64(0)
			if j == from {
				o = fromOff
			}
			if err := r.cut(segs[j].name, o, reason); err != nil {
				return err
			}
			if err := r.moveAside(hintName(segs[j]), "index of a repaired segment"); err != nil {
				return err
			}
		}
		open = nil
		return nil
	}
	var buf []byte
	for i, seg := range segs {
		last := i == len(segs)-1
		pad := int64(0)
		if last {
			// nutsdb extends the active segment with zeros before reading it.
			pad = segmentSize
		}
		var phys int
		var err error
		buf, phys, err = readSegment(filepath.Join(r.dir, seg.name), buf, pad)
		if err != nil {
			return err
		}
		data := buf
		end, damage := walkSegment(data, func(rec recordInfo) {
			if open != nil && open.txID != rec.txID {
				// Cannot be cut without losing later transactions: nutsdb
				// will drop the first record of the next one.
				r.notes = append(r.notes, fmt.Sprintf("%s: transaction at offset %d has no commit mark and is followed by another one (left as is)",
					segs[open.seg].name, open.off))
				open = nil
			}
			if open == nil {
				open = &txStart{seg: i, off: rec.off, txID: rec.txID}
			}
			if rec.committed {
				open = nil
			}
		})
		switch {
		case damage != "":
			if err := cutAt(i, end, damage); err != nil {
				return err
			}
		case last && open != nil:
			if err := cutAt(i, end, "transaction without its commit mark at the end"); err != nil {
				return err
			}
		case last && end < int64(phys) && nonZeroEnd(data[end:phys]) > 0:
			// nutsdb would write the next records over these bytes and
			// could read the rest of them as records at the next start.
			if err := cutAt(i, end, "bytes after the last record"); err != nil {
				return err
			}
		}
	}
	// nutsdb reads a value with the longest header it could have, and takes
	// every segment for segmentSize bytes long: the last record of a shorter
	// one (cut above, or written with a smaller segment size) could not be
	// read. Zeros after the last record are what nutsdb writes itself.
	for _, seg := range segs {
		path := filepath.Join(r.dir, seg.name)
		info, err := os.Stat(path)
		if err != nil {
			return err
		}
		if info.Size() < segmentSize {
			if err := truncateSync(path, segmentSize); err != nil {
				return err
			}
		}
	}
	return nil
}

// readSegment reads the file at path into buf (grown as needed), followed
// by zeros up to pad bytes. It returns the data and the file's size.
func readSegment(path string, buf []byte, pad int64) ([]byte, int, error) {
	f, err := os.Open(path)
	if err != nil {
		return buf, 0, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return buf, 0, err
	}
	size := int(info.Size())
	n := max(size, int(pad))
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(f, buf[:size]); err != nil {
		return buf, 0, fmt.Errorf("%s: %w", path, err)
	}
	clear(buf[size:])
	return buf, size, nil
}

func hintName(s segment) string {
	return strings.TrimSuffix(s.name, nutsdb.DataSuffix) + nutsdb.HintSuffix
}

// repairBuckets cuts nutsdb's bucket file at its first record that does not
// verify: nutsdb refuses to open on a bad checksum, and writes its next
// bucket record after the last good one, leaving any rest behind.
func (r *repairer) repairBuckets() error {
	data, err := os.ReadFile(filepath.Join(r.dir, nutsdb.BucketStoreFileName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	meta := int(nutsdb.BucketMetaSize) // crc uint32, op uint16, size uint32 (LE)
	off := 0
	damage := ""
	for off < len(data) {
		if len(data)-off < meta {
			damage = "torn bucket record"
			break
		}
		crc := binary.LittleEndian.Uint32(data[off:])
		size := int(binary.LittleEndian.Uint32(data[off+6:]))
		if size > len(data)-off-meta {
			damage = "torn bucket record"
			break
		}
		if size < nutsdb.IdSize+nutsdb.DsSize { // nutsdb would panic decoding it
			damage = "malformed bucket record"
			break
		}
		if crc32.ChecksumIEEE(data[off+4:off+meta+size]) != crc {
			damage = "bucket record checksum mismatch"
			break
		}
		off += meta + size
	}
	if damage == "" {
		return nil
	}
	return r.cut(nutsdb.BucketStoreFileName, int64(off), damage)
}

func writeFileSync(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	return errors.Join(err, f.Close())
}

func truncateSync(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	err = f.Truncate(size)
	if err == nil {
		err = f.Sync()
	}
	return errors.Join(err, f.Close())
}

func syncPath(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	return errors.Join(f.Sync(), f.Close())
}

func syncDir(dir string) error { return syncPath(dir) }

// usage is the size of the database files in a directory.
type usage struct {
	files     int
	apparent  int64 // sum of file sizes (segments are preallocated, sparse)
	allocated int64 // disk blocks actually used, as du counts them
}

func dirUsage(dir string) (usage, error) {
	var u usage
	entries, err := os.ReadDir(dir)
	if err != nil {
		return u, err
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed by a merge meanwhile
		}
		if err != nil {
			return u, err
		}
		u.files++
		u.apparent += info.Size()
		u.allocated += allocatedBytes(info)
	}
	return u, nil
}
