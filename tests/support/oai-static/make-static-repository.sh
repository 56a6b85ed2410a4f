#!/bin/sh
# Builds an OAI-PMH 2.0 Static Repository (namespace
# http://www.openarchives.org/OAI/2.0/static-repository) from a MARCXML
# <collection>, for Debian's libhttp-oai-perl static gateway
# (/usr/share/doc/libhttp-oai-perl/examples/oai_static_gateway.pl).
#
#   make-static-repository.sh OUTPUT [MARCXML]
#
# OUTPUT   the static repository XML to write ("-" for stdout)
# MARCXML  default: tests/data/marc/slices/thomas-mann-shared-71.xml
#
# One metadata format, marc21; each MARC <record> goes unchanged into
# <oai:metadata>. Identifier: oai:static.example.org:<001>. Datestamp
# (day granularity, as static repositories require): the date of the record's
# 005, else 2000-01-01. earliestDatestamp is the smallest datestamp.
# Environment (optional): OAI_STATIC_NAMESPACE (default static.example.org),
# OAI_STATIC_BASEURL (default http://127.0.0.1/oai; the gateway replaces it
# with its own URL in Identify anyway).
# Needs perl and XML::LibXML (libxml-libxml-perl, a dependency of
# libhttp-oai-perl). Records with no 001, or a repeated 001, are an error.
set -eu

[ $# -ge 1 ] || { echo "usage: $0 OUTPUT [MARCXML]" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
out=$1
in=${2:-$here/../../data/marc/slices/thomas-mann-shared-71.xml}
[ -r "$in" ] || { echo "$0: cannot read $in" >&2; exit 1; }

exec perl -MXML::LibXML -we '
use strict;
my ($in, $out) = @ARGV;
my $SR    = "http://www.openarchives.org/OAI/2.0/static-repository";
my $OAI   = "http://www.openarchives.org/OAI/2.0/";
my $XSI   = "http://www.w3.org/2001/XMLSchema-instance";
my $MARC  = "http://www.loc.gov/MARC21/slim";
my $ns    = $ENV{OAI_STATIC_NAMESPACE} // "static.example.org";
my $base  = $ENV{OAI_STATIC_BASEURL}   // "http://127.0.0.1/oai";

my $src = XML::LibXML->load_xml(location => $in, no_blanks => 0);
my $xpc = XML::LibXML::XPathContext->new($src);
$xpc->registerNs(m => $MARC);
my @recs = $xpc->findnodes("//m:record");
die "$in: no MARC21 slim records\n" unless @recs;

my (@items, %seen);
for my $r (@recs) {
    my $id = $xpc->findvalue("m:controlfield[\@tag=\"001\"][1]", $r);
    $id =~ s/^\s+|\s+$//g;
    die "$in: a record without 001\n" if $id eq "";
    die "$in: 001 $id repeated\n" if $seen{$id}++;
    my $d = $xpc->findvalue("m:controlfield[\@tag=\"005\"][1]", $r);
    my $ds = $d =~ /^\s*(\d{4})(\d\d)(\d\d)/ ? "$1-$2-$3" : "2000-01-01";
    push @items, [$id, $ds, $r];
}
my ($earliest) = sort map { $_->[1] } @items;

my $doc  = XML::LibXML::Document->new("1.0", "UTF-8");
my $root = $doc->createElementNS($SR, "Repository");
$doc->setDocumentElement($root);
$root->setNamespace($OAI, "oai", 0);
$root->setNamespace($XSI, "xsi", 0);
$root->setAttributeNS($XSI, "xsi:schemaLocation",
    "$SR http://www.openarchives.org/OAI/2.0/static-repository.xsd");

my $el = sub {    # (parent, nsuri, qname, text?)
    my ($p, $u, $q, $t) = @_;
    my $e = $doc->createElementNS($u, $q);
    $e->appendText($t) if defined $t;
    $p->appendChild($e);
    return $e;
};

my $identify = $el->($root, $SR, "Identify");
$el->($identify, $OAI, "oai:repositoryName", "iblsync test: thomas-mann-shared-71 (static)");
$el->($identify, $OAI, "oai:baseURL", $base);
$el->($identify, $OAI, "oai:protocolVersion", "2.0");
$el->($identify, $OAI, "oai:adminEmail", "admin\@$ns");
$el->($identify, $OAI, "oai:earliestDatestamp", $earliest);
$el->($identify, $OAI, "oai:deletedRecord", "no");
$el->($identify, $OAI, "oai:granularity", "YYYY-MM-DD");

my $lmf = $el->($root, $SR, "ListMetadataFormats");
my $mf  = $el->($lmf, $OAI, "oai:metadataFormat");
$el->($mf, $OAI, "oai:metadataPrefix", "marc21");
$el->($mf, $OAI, "oai:schema", "http://www.loc.gov/standards/marcxml/schema/MARC21slim.xsd");
$el->($mf, $OAI, "oai:metadataNamespace", $MARC);

my $lr = $el->($root, $SR, "ListRecords");
$lr->setAttribute("metadataPrefix", "marc21");
for my $it (@items) {
    my ($id, $ds, $r) = @$it;
    my $rec = $el->($lr, $OAI, "oai:record");
    my $h   = $el->($rec, $OAI, "oai:header");
    $el->($h, $OAI, "oai:identifier", "oai:$ns:$id");
    $el->($h, $OAI, "oai:datestamp", $ds);
    my $md  = $el->($rec, $OAI, "oai:metadata");
    my $copy = $doc->importNode($r, 1);
    $md->appendChild($copy);
    # declare the MARC namespace as the default on the record itself
    $copy->setNamespace($MARC, "", 1);
}

my $xml = $doc->toString(1);
if ($out eq "-") { binmode STDOUT; print $xml; }
else {
    open my $fh, ">:raw", "$out.tmp" or die "$out.tmp: $!\n";
    print $fh $xml; close $fh or die "$out.tmp: $!\n";
    rename "$out.tmp", $out or die "$out: $!\n";
}
printf STDERR "%s: %d records, earliest %s\n", $out, scalar(@items), $earliest;
' "$in" "$out"
