package OAIStaticGatewayCompat;

# Lets Debian 12's unmodified static-repository gateway
#   /usr/share/doc/libhttp-oai-perl/examples/oai_static_gateway.pl
# run as a CGI program with HTTP::OAI 4.12 (libhttp-oai-perl 4.12-1).
# Load it before the script:
#
#   OAI_STATIC_REPO=/abs/path/repo.static.xml \
#   perl -I<this directory> -MOAIStaticGatewayCompat \
#        /usr/share/doc/libhttp-oai-perl/examples/oai_static_gateway.pl
#
# The example was written for the HTTP::OAI 3.x API; as shipped it fails with
# 4.12. What this module changes, and nothing else (see NOTES.md):
#  1. Repository file: the script hard-codes 'file:../examples/repository.xml',
#     which URI canonicalises to file:///../examples/repository.xml, i.e.
#     /examples/repository.xml whatever the working directory. A Harvester
#     created with that baseURL gets $ENV{OAI_STATIC_REPO} instead (an absolute
#     path or a file: URL).
#  2. Output: the script ends with $r->set_handler(XML::SAX::Writer->new(...));
#     $r->generate; but 4.x's generate wants an HTTP::OAI::SAX::Driver argument
#     (dies "Can't call method start_prefix_mapping on an undefined value").
#     generate() without a driver is given one around the handler set, with
#     start_oai_pmh/end_oai_pmh, as 4.x's own toString does.
#  3. A response read from a static repository has version '2.0s', and 4.x's
#     generate then writes a <static:Repository> document, not <OAI-PMH>; the
#     version is set to '2.0' for output.
#  4. The script replaces Identify's baseURL with CGI::url() only when
#     ref($r) eq 'HTTP::OAI::Identify', never true in 4.x (a response is an
#     HTTP::OAI::Response holding an Identify); done here instead.
#  5. XML::SAX::Writer (libxml-sax-writer-perl) is only a Recommends of
#     libhttp-oai-perl. When it is missing a stand-in is provided that builds
#     the document with XML::LibXML::SAX::Builder and prints it with libxml2
#     at end_document. When it is installed the real one is used.

use strict;
use warnings;
use HTTP::OAI;
use URI::file;

our $WRITER = 'XML::SAX::Writer';

my $repo = $ENV{OAI_STATIC_REPO};
die "OAIStaticGatewayCompat: set OAI_STATIC_REPO to the static repository file\n"
    unless defined $repo && length $repo;
$repo = URI::file->new_abs($repo)->as_string unless $repo =~ /^file:/;

{
    no warnings 'redefine';

    my $new = \&HTTP::OAI::Harvester::new;
    *HTTP::OAI::Harvester::new = sub {
        my ($class, %args) = @_;
        $args{baseURL} = $repo
            if defined $args{baseURL} && $args{baseURL} eq 'file:../examples/repository.xml';
        return $new->($class, %args);
    };

    my $generate = \&HTTP::OAI::Response::generate;
    *HTTP::OAI::Response::generate = sub {
        my ($self, $driver) = @_;
        return $generate->(@_) if defined $driver;
        my $handler = $self->get_handler
            or die "OAIStaticGatewayCompat: generate without a driver or a handler\n";
        $self->version('2.0') if defined $self->version && $self->version eq '2.0s';
        if (defined &CGI::url) {
            $_->baseURL(CGI::url()) for grep { ref($_) eq 'HTTP::OAI::Identify' } $self->content;
        }
        my $d = HTTP::OAI::SAX::Driver->new(Handler => $handler);
        $d->start_oai_pmh;
        $generate->($self, $d);
        $d->end_oai_pmh;
        return;
    };
}

unless (eval { require XML::SAX::Writer; 1 }) {
    $WRITER = 'OAIStaticGatewayCompat::Writer (XML::LibXML)';
    $INC{'XML/SAX/Writer.pm'} = __FILE__;
    no warnings 'once';
    *XML::SAX::Writer::new = sub { shift; OAIStaticGatewayCompat::Writer->new(@_) };
}

package OAIStaticGatewayCompat::Writer;

use strict;
use warnings;
use XML::LibXML::SAX::Builder;
our @ISA = ('XML::LibXML::SAX::Builder');

sub new {
    my ($class, %args) = @_;
    my $self = XML::LibXML::SAX::Builder::new($class);
    $self->{_output} = $args{Output} || \*STDOUT;
    return $self;
}

sub end_document {
    my $self = shift;
    my $doc  = $self->SUPER::end_document(@_);
    my $xml  = $doc->toString(0);    # UTF-8 bytes
    utf8::decode($xml);              # the gateway's STDOUT has a :utf8 layer
    my $fh = $self->{_output};
    print {$fh} $xml;
    return $doc;
}

1;
